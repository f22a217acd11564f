"""The OpenAPI schema's error responses: each status an operation can send, with the body it is sent with.

Every error is an ErrorBody (service/errors.py). An operation's description of a status lists the `error`
values it can carry, each with what it means. Routers declare the errors of the CiteQA tree they raise
(`responses=error_responses(DocumentNotFound, ...)`); `install_openapi` adds those that come from the HTTP
layer itself, to every operation they can reach, and replaces FastAPI's default 422, whose
`{"detail": [...]}` body the server never sends.
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from typing import Any

from fastapi import FastAPI

from citeqa.errors import (
    CiteQAError,
    CrossOriginWrite,
    Forbidden,
    HostNotAllowed,
    RequestTooLarge,
    Unauthorized,
)
from service.errors import ErrorBody, status_of
from service.guards import WRITE_METHODS

ERROR_BODY_REF = {"$ref": "#/components/schemas/ErrorBody"}
FASTAPI_422 = {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}

# Errors that the HTTP layer sends, not a CiteQA error class: (status, `error`, meaning).
VALIDATION_ERROR = (
    422,
    "ValidationError",
    "The request breaks this schema; `details` names each field at fault.",
)
UNREADABLE_BODY = (
    400,
    "HTTPError",
    "The body cannot be parsed: bytes that are not UTF-8, or broken multipart.",
)
INTERNAL_ERROR = (500, "InternalError", "A bug: the server's log has the error.")


def _described(error: type[CiteQAError]) -> tuple[int, str, str]:
    summary = (inspect.getdoc(error) or "").splitlines()[0]
    return status_of(error), error.__name__, summary


def _line(name: str, meaning: str) -> str:
    return f"- `{name}`: {meaning}"


def error_responses(*errors: type[CiteQAError]) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a route that raises `errors`: each one's status, described by its docstring."""
    lines: dict[int, list[str]] = defaultdict(list)
    for error in errors:
        status, name, meaning = _described(error)
        lines[status].append(_line(name, meaning))
    # The model makes FastAPI put ErrorBody among the schema's components.
    return {status: {"model": ErrorBody, "description": "\n".join(found)} for status, found in lines.items()}


def _add(responses: dict[str, Any], status: int, name: str, meaning: str) -> None:
    """Add `name` to the description of `status`, an ErrorBody response created if missing."""
    response = responses.setdefault(str(status), {"description": ""})
    response["content"] = {"application/json": {"schema": ERROR_BODY_REF}}
    response["description"] = "\n".join(filter(None, [response["description"], _line(name, meaning)]))


def _document_errors(openapi: dict[str, Any]) -> dict[str, Any]:
    for item in openapi["paths"].values():
        for method, operation in item.items():
            responses = operation["responses"]
            # FastAPI's own 422, on an operation with parameters or a body.
            if responses.get("422", {}).get("content", {}).get("application/json") == FASTAPI_422:
                del responses["422"]
            errors = [_described(HostNotAllowed), INTERNAL_ERROR]
            if method.upper() in WRITE_METHODS:
                errors.append(_described(CrossOriginWrite))
            if "parameters" in operation or "requestBody" in operation:
                errors.append(VALIDATION_ERROR)
            if "requestBody" in operation:
                errors += [UNREADABLE_BODY, _described(RequestTooLarge)]
            if "security" in operation:  # an API key's: needed once a key exists, and limited in scope
                errors += [_described(Unauthorized), _described(Forbidden)]
            for error in errors:
                _add(responses, *error)
            operation["responses"] = dict(sorted(responses.items()))
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas.setdefault("ErrorBody", ErrorBody.model_json_schema(mode="serialization"))
    return openapi


def install_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` (and so /openapi.json and /docs) describe the errors the server sends."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document_errors(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
