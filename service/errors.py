"""Errors as HTTP responses: one status table for CiteQA's error tree, one JSON body for every error."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from citeqa.errors import (
    BackendFailed,
    BackendUnavailable,
    CiteQAError,
    CollectionExists,
    CollectionNotFound,
    CrossOriginWrite,
    DocumentNotFound,
    EmbeddingModelError,
    Forbidden,
    HostNotAllowed,
    IndexLocked,
    IndexModelMismatch,
    InvalidCollectionName,
    JobNotFound,
    JobQueueFull,
    NotReady,
    RequestTooLarge,
    TooManyFilterValues,
    Unauthorized,
    UploadRejected,
)
from service.jobs import RETRY_AFTER_S

logger = logging.getLogger(__name__)

# The status of each error class; a class not listed takes that of its nearest listed ancestor.
STATUS_OF: dict[type[CiteQAError], int] = {
    CiteQAError: 400,
    HostNotAllowed: 400,
    Unauthorized: 401,
    Forbidden: 403,
    CrossOriginWrite: 403,
    DocumentNotFound: 404,
    CollectionNotFound: 404,
    CollectionExists: 409,
    InvalidCollectionName: 422,
    IndexLocked: 409,
    IndexModelMismatch: 409,
    RequestTooLarge: 413,
    TooManyFilterValues: 422,
    JobNotFound: 404,
    JobQueueFull: 429,
    UploadRejected: 422,
    EmbeddingModelError: 500,
    NotReady: 503,
    BackendUnavailable: 503,
    BackendFailed: 500,
}


def status_of(error: type[CiteQAError]) -> int:
    return next(STATUS_OF[cls] for cls in error.__mro__ if cls in STATUS_OF)


class ErrorBody(BaseModel):
    """Every error response: the error's class, what went wrong and how to fix it, and item details."""

    error: str
    message: str
    details: list[dict] = []


def error_response(status: int, error: str, message: str, details: list[dict] | None = None) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content=ErrorBody(error=error, message=message, details=details or []).model_dump(),
    )


def citeqa_error_response(error: CiteQAError) -> JSONResponse:
    response = error_response(status_of(type(error)), type(error).__name__, error.message, error.details)
    if isinstance(error, Unauthorized):
        response.headers["WWW-Authenticate"] = 'Bearer realm="citeqa"'
    if isinstance(error, JobQueueFull):
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


INTERNAL_ERROR_MESSAGE = "The server failed unexpectedly; the error is in its log."


class UnexpectedErrors:
    """Answers a bug's exception with a 500 body, like every other error, and keeps the connection.

    Starlette's handler for `Exception` sits in its outermost middleware and re-raises after answering, so
    the server closes the connection and a client's next keep-alive request fails too. Caught here, inside
    that middleware, the exception ends with the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception("Unexpected error on %s %s", scope["method"], scope["path"])
            if started:  # half a response is out: only closing the connection can tell the client
                raise
            response = error_response(500, "InternalError", INTERNAL_ERROR_MESSAGE)
            await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CiteQAError)
    async def citeqa_error(_: Request, exc: CiteQAError) -> JSONResponse:
        return citeqa_error_response(exc)

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
        return error_response(422, "ValidationError", message, details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, "HTTPError", str(exc.detail))

    app.add_middleware(UnexpectedErrors)
