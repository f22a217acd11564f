"""Background ingest: an upload is checked and stored by its request, and embedded later by one worker.

Each job is a folder `jobs/<id>` in the data folder: `job.json` (its state, rewritten whole at each change
of status) and, until it ends, `documents.jsonl` (the articles read from the upload). One worker thread runs
the jobs in the order they came, one at a time, so jobs of one collection never compete for its write lock.

A job interrupted by a shutdown or a crash is found `running` or `queued` at the next start and run again:
documents committed before the interruption are then skipped as unchanged, so it resumes where it stopped
(to within a batch, index.ingest.COMMIT_EVERY_CHUNKS) and never adds anything twice.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from citeqa.collections import Collection
from citeqa.errors import CiteQAError, JobNotFound, JobQueueFull
from index.documents import Document
from index.ingest import IngestedDocument
from index.readers import ReadProblem
from service.files import write_atomically

logger = logging.getLogger(__name__)

JobStatus = Literal["queued", "running", "done", "failed"]
JOBS_FOLDER = "jobs"
"""In the data folder."""
JOB_FILE = "job.json"
DOCUMENTS_FILE = "documents.jsonl"
# How long a client told 429 should wait before it tries again (a job of one report takes about this).
RETRY_AFTER_S = 30


class Job(BaseModel):
    """An ingest job and what it has done so far."""

    id: str
    collection: str
    status: JobStatus
    files: list[str] = Field(description="The names of the uploaded files.")
    created: datetime
    started: datetime | None = None
    finished: datetime | None = None
    texts_embedded: int = Field(default=0, description="Chunks and sentences embedded so far.")
    texts_total: int | None = Field(default=None, description="Texts to embed in all; None until it starts.")
    documents: list[IngestedDocument] = Field(
        default_factory=list, description="Once done: each document added, updated or unchanged."
    )
    problems: list[ReadProblem] = Field(default_factory=list, description="What could not be read, per file.")
    error: str | None = Field(default=None, description="Why it failed, and how to fix it.")
    runs: int = Field(default=0, description="How many times it was started: more than 1 after a restart.")


class JobInterrupted(Exception):
    """Raised inside a running job when the worker is asked to stop."""


class JobQueue:
    """The jobs of one data folder, and the worker thread that runs them."""

    def __init__(
        self,
        folder: Path,
        collection: Callable[[str], Collection],
        *,
        max_queued: int,
    ) -> None:
        self.folder = folder
        self._collection = collection
        self.max_queued = max_queued
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._load()

    # -- the API's side ----------------------------------------------------------------------------

    def submit(
        self,
        collection: str,
        files: Sequence[str],
        documents: Sequence[Document],
        problems: Sequence[ReadProblem],
    ) -> Job:
        """Store an upload's documents as a new queued job (JobQueueFull when `max_queued` wait already)."""
        with self._lock:
            waiting = sum(job.status in ("queued", "running") for job in self._jobs.values())
            if waiting >= self.max_queued:
                raise JobQueueFull(
                    f"{waiting} ingest jobs are waiting or running, the most this server queues "
                    f"(CITEQA_MAX_QUEUED_JOBS={self.max_queued}); retry in {RETRY_AFTER_S} s."
                )
            job = Job(
                id=uuid.uuid4().hex,
                collection=collection,
                status="queued",
                files=list(files),
                created=datetime.now(UTC),
                problems=list(problems),
            )
            folder = self.folder / job.id
            folder.mkdir(parents=True)
            write_atomically(folder / DOCUMENTS_FILE, "".join(d.model_dump_json() + "\n" for d in documents))
            self._save(job)
            self._jobs[job.id] = job
            self._wake.notify()
        logger.info("Job %s queued: %d documents for collection %s", job.id, len(documents), collection)
        return job.model_copy()

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise JobNotFound(f"No ingest job with id {job_id!r}.")
            return job.model_copy()

    # -- the worker --------------------------------------------------------------------------------

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._work, name="citeqa-ingest", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask the worker to stop at the next batch of texts and wait for it; the job it ran is queued
        again, to resume at the next start."""
        self._stopping.set()
        with self._lock:
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._stopping.is_set() and (job := self._next()) is None:
                    self._wake.wait()
                if self._stopping.is_set():
                    return
                job.status, job.started, job.runs = "running", datetime.now(UTC), job.runs + 1
                self._save(job)
            self._run(job)

    def _next(self) -> Job | None:
        queued = [job for job in self._jobs.values() if job.status == "queued"]
        return min(queued, key=lambda job: job.created) if queued else None

    def _run(self, job: Job) -> None:
        def progress(done: int, total: int) -> None:
            if self._stopping.is_set():
                raise JobInterrupted
            job.texts_embedded, job.texts_total = done, total

        folder = self.folder / job.id
        try:
            lines = (folder / DOCUMENTS_FILE).read_text(encoding="utf-8").splitlines()
            documents = [Document.model_validate_json(line) for line in lines if line]
            results = self._collection(job.collection).indexer.add(documents, on_progress=progress)
        except JobInterrupted:
            logger.info("Job %s interrupted by a shutdown; it resumes at the next start", job.id)
            self._end(job, "queued")
            return
        except CiteQAError as error:
            logger.warning("Job %s failed: %s", job.id, error.message)
            self._end(job, "failed", error=error.message)
        except Exception:
            logger.exception("Job %s failed unexpectedly", job.id)
            self._end(job, "failed", error="The server failed unexpectedly; the error is in its log.")
        else:
            self._end(job, "done", documents=results)
            logger.info("Job %s done: %d documents", job.id, len(results))
        (folder / DOCUMENTS_FILE).unlink(missing_ok=True)

    def _end(self, job: Job, status: JobStatus, **changes: object) -> None:
        with self._lock:
            job.status = status
            if status != "queued":
                job.finished = datetime.now(UTC)
            for name, value in changes.items():
                setattr(job, name, value)
            self._save(job)

    # -- files -------------------------------------------------------------------------------------

    def _load(self) -> None:
        if not self.folder.is_dir():
            return
        for path in self.folder.glob(f"*/{JOB_FILE}"):
            try:
                job = Job.model_validate_json(path.read_bytes())
            except ValueError as error:
                logger.warning("Ignoring the unreadable job file %s: %s", path, error)
                continue
            if job.status == "running":
                job.status = "queued"  # the process running it stopped: run it again
                self._save(job)
            if job.status == "queued" and not (path.parent / DOCUMENTS_FILE).is_file():
                job.status, job.error = "failed", "Its documents were lost before it ran; upload them again."
                self._save(job)
            self._jobs[job.id] = job
        resumed = sum(job.status == "queued" for job in self._jobs.values())
        if resumed:
            logger.info("%d ingest jobs queued from before the last stop", resumed)

    def _save(self, job: Job) -> None:
        write_atomically(self.folder / job.id / JOB_FILE, job.model_dump_json(indent=2))
