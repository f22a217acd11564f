"""The API docs pages, Swagger UI at /docs and ReDoc at /redoc, with their scripts and styles served by
CiteQA itself: FastAPI's default pages load them from a CDN, and stay blank on a machine offline.

The assets are those `fastapi-offline` ships (Swagger UI 5, ReDoc 2). `swagger-ui-bundle` ships Swagger UI
4, which refuses the OpenAPI 3.1 schemas FastAPI writes ("Unable to render this definition").
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from service.headers import allow_own_inline_blocks, policy

ASSETS = Path(str(files("fastapi_offline") / "static"))
ASSETS_URL = "/docs/assets"


def install_docs(app: FastAPI) -> None:
    """Serve /docs, /redoc and their assets. Create `app` with docs_url=None and redoc_url=None."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} API",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            # Swagger UI would send the schema to validator.swagger.io and show the verdict as an image.
            swagger_ui_parameters={"validatorUrl": None},
        )
        return allow_own_inline_blocks(page)

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} API",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
        # ReDoc writes its styles into <style> elements as it renders (styled-components, a scrollbar's
        # stylesheet), which no hash can name in advance, and builds its search worker from a blob: URL.
        # Scripts stay those CiteQA serves; its footer's badge from cdn.redoc.ly stays refused (img-src).
        page.headers["content-security-policy"] = policy(
            "style-src 'self' 'unsafe-inline'", "worker-src 'self' blob:"
        )
        return page
