"""The FastAPI application, built by `create_app`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from citeqa.settings import Settings, get_settings
from citeqa.wiring import Resources
from service.deps import collection_in_path
from service.docs import install_docs
from service.errors import install_error_handlers
from service.guards import RequestGuard
from service.headers import SecurityHeaders
from service.jobs import JOBS_FOLDER, JobQueue
from service.keys import KeyStore
from service.limits import BodyLimit
from service.metrics import Metrics
from service.openapi import install_openapi
from service.routes import chat, collections, documents, health, jobs, search

logger = logging.getLogger(__name__)

WEB_ROOT = Path(__file__).parent / "web" / "static"

DESCRIPTION = """
Ask questions in Chinese or English over indexed articles; get the ranked passages that hold
the answer, each with a citation (title, section, page and the exact character span in the
article's text).
"""


def create_app(settings: Settings | None = None, resources: Resources | None = None) -> FastAPI:
    """Build the app from `settings` (default: the process's, `get_settings()`). Without `resources` the
    model and index are loaded at startup (tests pass resources built around a fake or preloaded encoder)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = resources is None
        loaded = resources or await run_in_threadpool(Resources.load, settings)
        app.state.jobs = JobQueue(
            settings.data_dir / JOBS_FOLDER, loaded.collections.get, max_queued=settings.max_queued_jobs
        )
        app.state.jobs.start()
        app.state.resources = loaded
        logger.info("CiteQA ready: model %s", loaded.encoder.name)
        try:
            yield
        finally:
            # The running job stops at its next batch of texts, and resumes at the next start.
            await run_in_threadpool(app.state.jobs.stop)
            if owned:
                loaded.close()

    app = FastAPI(
        title="CiteQA",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # Served by install_docs from the package, not from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.keys = KeyStore(settings.keys_path)
    # Middleware added later wraps what was added before. Error handling first; then the guard, so that
    # a refused request reaches nothing else; the body limit; the headers, on every answer, refusals too;
    # the metrics last, counting the 500s and the refusals.
    install_error_handlers(app)
    app.add_middleware(RequestGuard, allowed_hosts=settings.allowed_hosts)
    app.add_middleware(BodyLimit, settings=settings)
    app.add_middleware(SecurityHeaders)
    app.state.metrics = Metrics()
    app.state.metrics.install(app)
    app.include_router(search.router)
    app.include_router(collections.router)
    app.include_router(jobs.router)
    app.include_router(documents.router, prefix="/v1")
    app.include_router(
        documents.router, prefix="/v1/collections/{collection}", dependencies=[Depends(collection_in_path)]
    )
    app.include_router(health.router)
    app.include_router(chat.router)
    install_openapi(app)
    install_docs(app)
    if WEB_ROOT.is_dir():
        app.mount("/", StaticFiles(directory=WEB_ROOT, html=True), name="web")
    return app
