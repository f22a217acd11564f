"""Background ingest: an upload becomes a job that one worker runs; a stop or a crash never loses one."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from citeqa.collections import Collections
from citeqa.errors import JobQueueFull
from citeqa.wiring import Resources
from index.readers import read_upload
from service.app import create_app
from service.jobs import DOCUMENTS_FILE, JOB_FILE, JobQueue
from tests.conftest import SAMPLE_REPORT, fake_settings, free_port, start_server, stop_server
from tests.fakes import FakeEncoder
from tests.service.uploads import wait_for_job

ARTICLES = [
    {"title": "晶圆代工吃紧", "text": "晶圆代工产能紧张，手机芯片供不应求。", "doc_id": "chips"},
    {"title": "云服务市场", "text": "云服务市场规模持续扩大。", "doc_id": "cloud"},
]


@pytest.fixture
def collections(tmp_path: Path):
    opened = Collections(fake_settings(tmp_path / "data"), FakeEncoder(), None)
    yield opened
    opened.close()


def _documents():
    content = "\n".join(json.dumps(a, ensure_ascii=False) for a in ARTICLES).encode()
    return read_upload("a.jsonl", content).documents


def _finished(queue: JobQueue, job_id: str, timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    while (status := queue.get(job_id).status) in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return status


def test_a_job_queued_before_a_restart_runs_after_it(collections: Collections, tmp_path: Path) -> None:
    folder = tmp_path / "jobs"
    before = JobQueue(folder, collections.get, max_queued=4)  # never started: the process stopped
    job = before.submit("default", ["a.jsonl"], _documents(), [])
    assert (folder / job.id / DOCUMENTS_FILE).is_file()

    after = JobQueue(folder, collections.get, max_queued=4)
    after.start()
    try:
        assert _finished(after, job.id) == "done"
    finally:
        after.stop()
    assert collections.get().store.counts()[0] == 2
    assert not (folder / job.id / DOCUMENTS_FILE).exists()  # the upload is not kept once indexed
    assert json.loads((folder / job.id / JOB_FILE).read_text())["status"] == "done"


def test_a_job_found_running_at_start_is_run_again_and_adds_nothing_twice(
    collections: Collections, tmp_path: Path
) -> None:
    folder = tmp_path / "jobs"
    job = JobQueue(folder, collections.get, max_queued=4).submit("default", ["a.jsonl"], _documents(), [])
    collections.get().indexer.add(_documents()[:1])  # what the crashed run had committed
    state = json.loads((folder / job.id / JOB_FILE).read_text())
    (folder / job.id / JOB_FILE).write_text(json.dumps({**state, "status": "running", "runs": 1}))

    queue = JobQueue(folder, collections.get, max_queued=4)
    queue.start()
    try:
        assert _finished(queue, job.id) == "done"
    finally:
        queue.stop()
    resumed = queue.get(job.id)
    assert resumed.runs == 2
    assert [d.status for d in resumed.documents] == ["unchanged", "added"]
    assert collections.get().store.counts()[0] == 2


def test_a_job_for_a_deleted_collection_fails_with_the_reason(
    collections: Collections, tmp_path: Path
) -> None:
    collections.create("gone")
    queue = JobQueue(tmp_path / "jobs", collections.get, max_queued=4)
    job = queue.submit("gone", ["a.jsonl"], _documents(), [])
    collections.delete("gone")
    queue.start()
    try:
        assert _finished(queue, job.id) == "failed"
    finally:
        queue.stop()
    assert "No collection named 'gone'" in (queue.get(job.id).error or "")


def test_the_queue_refuses_jobs_past_its_limit(collections: Collections, tmp_path: Path) -> None:
    queue = JobQueue(tmp_path / "jobs", collections.get, max_queued=2)
    for _ in range(2):
        queue.submit("default", ["a.jsonl"], _documents(), [])
    with pytest.raises(JobQueueFull, match="CITEQA_MAX_QUEUED_JOBS=2"):
        queue.submit("default", ["a.jsonl"], _documents(), [])


def test_a_full_queue_answers_429_with_retry_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = fake_settings(tmp_path / "index", max_queued_jobs=1)
    resources = Resources.from_encoder(settings, FakeEncoder())
    # The worker is kept from running, so the first job still waits when the second comes.
    monkeypatch.setattr(JobQueue, "start", lambda self: None)
    files = [("files", ("a.jsonl", json.dumps(ARTICLES[0], ensure_ascii=False).encode(), "text/plain"))]
    try:
        with TestClient(create_app(settings, resources)) as client:
            assert client.post("/v1/documents", files=files).status_code == 202
            refused = client.post("/v1/documents", files=files)
    finally:
        resources.close()
    assert refused.status_code == 429
    assert refused.headers["Retry-After"].isdigit()
    assert "CITEQA_MAX_QUEUED_JOBS" in refused.json()["message"]


@pytest.mark.server
@pytest.mark.model
def test_a_job_stopped_by_sigterm_or_killed_resumes_after_each_restart(tmp_path: Path) -> None:
    env = {**os.environ, "CITEQA_DATA_DIR": str(tmp_path / "index"), "CITEQA_PORT": str(free_port())}
    url = f"http://127.0.0.1:{env['CITEQA_PORT']}"
    log = tmp_path / "server.log"
    # Three articles of the sample report: a job of about 130 texts, stopped after its first 32.
    articles = read_upload(SAMPLE_REPORT.name, SAMPLE_REPORT.read_bytes()).documents[:3]
    content = "".join(
        a.model_dump_json(include={"doc_id", "title", "text", "section"}) + "\n" for a in articles
    )

    def embedding(http: httpx.Client, job_id: str, runs: int) -> None:
        deadline = time.monotonic() + 300
        while (job := http.get(f"/v1/jobs/{job_id}").json())["runs"] < runs or job["texts_embedded"] < 32:
            assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
            time.sleep(0.2)

    server = start_server([], env, log)
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            files = [("files", ("three.jsonl", content.encode(), "text/plain"))]
            job = http.post("/v1/documents", files=files).json()
            embedding(http, job["id"], runs=1)
        stopping = time.monotonic()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)  # a running job does not hold the shutdown: it stops at its next batch
        assert time.monotonic() - stopping < 20
    finally:
        server.kill()

    server = start_server([], env, log)
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            embedding(http, job["id"], runs=2)
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)

    server = start_server([], env, log)
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            finished = wait_for_job(http, {"id": job["id"], "status": "queued"}, timeout_s=600)
            ready = http.get("/readyz").json()
    finally:
        stop_server(server)
    assert finished["status"] == "done", finished
    assert finished["runs"] == 3
    assert [d["doc_id"] for d in finished["documents"]] == [a.doc_id for a in articles]
    assert ready["documents"] == 3
