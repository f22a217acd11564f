"""Ingest jobs: what an upload is doing, or did."""

from __future__ import annotations

from fastapi import APIRouter

from citeqa.errors import JobNotFound, NotReady
from service.deps import JobsDep, ReadGrant
from service.jobs import Job
from service.openapi import error_responses

router = APIRouter(prefix="/v1/jobs", tags=["documents"])


@router.get(
    "/{job_id}",
    response_model=Job,
    summary="An ingest job's status and progress",
    responses=error_responses(JobNotFound, NotReady),
)
def get_job(job_id: str, grant: ReadGrant, queue: JobsDep) -> Job:
    """`status` goes queued → running → done (or failed, with `error`); `texts_embedded` of `texts_total`
    measure its progress; once done, `documents` says which were added, updated or unchanged."""
    job = queue.get(job_id)
    grant.check(job.collection)
    return job
