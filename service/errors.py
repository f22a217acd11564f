"""Every error a client can cause, mapped once to an HTTP status and a readable JSON body."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from index.errors import DocumentNotFound, IndexLocked, IndexModelMismatch, IndexStoreError

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    """An error with the HTTP status it deserves; `details` lists what to fix, item by item."""

    status_code = 400

    def __init__(self, message: str, details: list[dict] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class UploadRejected(ServiceError):
    """An uploaded file held no article that could be read."""

    status_code = 422


class UploadTooLarge(ServiceError):
    """An uploaded file is larger than CITEQA_MAX_UPLOAD_MB."""

    status_code = 413


class ErrorBody(BaseModel):
    error: str
    message: str
    details: list[dict] = []


_STATUS_OF: dict[type[Exception], int] = {
    DocumentNotFound: 404,
    IndexLocked: 409,
    IndexModelMismatch: 409,
}


def _body(status: int, error: str, message: str, details: list[dict] | None = None) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content=ErrorBody(error=error, message=message, details=details or []).model_dump(),
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(_: Request, exc: ServiceError) -> JSONResponse:
        return _body(exc.status_code, type(exc).__name__, exc.message, exc.details)

    @app.exception_handler(IndexStoreError)
    async def index_error(_: Request, exc: IndexStoreError) -> JSONResponse:
        return _body(_STATUS_OF.get(type(exc), 400), type(exc).__name__, str(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": ".".join(str(part) for part in error["loc"]), "problem": error["msg"]}
            for error in exc.errors()
        ]
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            message = 'The request body is not valid JSON. Send a JSON object, e.g. {"question": "..."}.'
        else:
            message = "; ".join(f"{d['field']}: {d['problem']}" for d in details)
        return _body(422, "ValidationError", message, details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _body(exc.status_code, "HTTPError", str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("Unexpected error on %s %s", request.method, request.url.path)
        return _body(500, "InternalError", "The server failed unexpectedly; the error is in its log.")
