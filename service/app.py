"""The FastAPI application, built by `create_app`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from citeqa.settings import Settings, get_settings
from citeqa.wiring import Resources
from service.docs import install_docs
from service.errors import install_error_handlers
from service.guards import RequestGuard
from service.headers import SecurityHeaders
from service.metrics import Metrics
from service.openapi import install_openapi
from service.routes import chat, documents, health, search

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
        app.state.resources = resources or await run_in_threadpool(Resources.load, settings)
        logger.info("CiteQA ready: model %s", app.state.resources.encoder.name)
        try:
            yield
        finally:
            if owned:
                app.state.resources.close()

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
    # Middleware added later wraps what was added before. Error handling first; then the guard, so that
    # a refused request reaches nothing else; the headers, on every answer, refusals too; the metrics
    # last, counting the 500s and the refusals.
    install_error_handlers(app)
    app.add_middleware(RequestGuard, allowed_hosts=settings.allowed_hosts)
    app.add_middleware(SecurityHeaders)
    app.state.metrics = Metrics()
    app.state.metrics.install(app)
    app.include_router(search.router)
    app.include_router(documents.router)
    app.include_router(health.router)
    app.include_router(chat.router)
    install_openapi(app)
    install_docs(app)
    if WEB_ROOT.is_dir():
        app.mount("/", StaticFiles(directory=WEB_ROOT, html=True), name="web")
    return app
