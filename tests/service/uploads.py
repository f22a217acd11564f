"""Uploading through the API as a client does: post the files, then follow the job until it ends."""

from __future__ import annotations

import time
from typing import Any

import httpx
from fastapi.testclient import TestClient


def wait_for_job(
    client: TestClient | httpx.Client, job: dict[str, Any], timeout_s: float = 120, **kw: Any
) -> dict:
    """The job once it is done or failed (AssertionError after `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    while job["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"job still {job['status']} after {timeout_s} s: {job}"
        time.sleep(0.05)
        response = client.get(f"/v1/jobs/{job['id']}", **kw)
        assert response.status_code == 200, response.text
        job = response.json()
    return job


def upload(
    client: TestClient | httpx.Client, files: list, path: str = "/v1/documents", **kw: Any
) -> dict[str, Any]:
    """Upload `files` (httpx's `files=`) and wait for the job: the finished job (status done or failed)."""
    response = client.post(path, files=files, **kw)
    assert response.status_code == 202, response.text
    return wait_for_job(client, response.json(), **kw)
