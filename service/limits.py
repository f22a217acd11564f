"""Limits that protect the server from one request: its body's size (checked while it streams in), the
files and articles of an upload, and the values of a filter. Each names the setting that sets it."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from citeqa.errors import RequestTooLarge, TooManyFilterValues, UploadTooLarge
from citeqa.settings import Settings
from index.documents import Document
from index.search import SearchFilters
from service.errors import error_response

_MB = 1024 * 1024


class BodyLimit:
    """Refuses a request body larger than the settings allow with a 413, before reading it all.

    Uploads (multipart) may hold CITEQA_MAX_UPLOAD_MB, other bodies (JSON) CITEQA_MAX_REQUEST_KB. A body
    that declares a larger Content-Length is refused unread; one that streams in without it is counted
    as it comes, and refused as soon as it passes the limit (the parser never spools the rest)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        too_large = self._error(headers.get(b"content-type", b"").startswith(b"multipart/"))
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > too_large.limit:
            response = error_response(413, type(too_large).__name__, too_large.message)
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > too_large.limit:
                raise too_large  # stops the parser reading on
            return message

        async def answering_413(message: Message) -> None:
            # The framework answers an exception raised while it parses a body with its own 400; once the
            # limit is passed, that answer is replaced by the 413 that says which limit.
            if received <= too_large.limit:
                await send(message)
            elif message["type"] == "http.response.start":
                await error_response(413, type(too_large).__name__, too_large.message)(scope, receive, send)

        await self.app(scope, counting_receive, answering_413)

    def _error(self, upload: bool) -> RequestTooLarge:
        if upload:
            limit = self.settings.max_upload_mb * _MB
            return UploadTooLarge(
                f"The upload is larger than {self.settings.max_upload_mb} MB in all (CITEQA_MAX_UPLOAD_MB); "
                "send fewer or smaller files per request, or raise the limit.",
                limit=limit,
            )
        limit = self.settings.max_request_kb * 1024
        return RequestTooLarge(
            f"The request body is larger than {self.settings.max_request_kb} KB (CITEQA_MAX_REQUEST_KB); "
            "shorten it, or raise the limit.",
            limit=limit,
        )


def check_file_count(count: int, settings: Settings) -> None:
    """UploadTooLarge if an upload holds more files than CITEQA_MAX_UPLOAD_FILES."""
    if count > settings.max_upload_files:
        raise UploadTooLarge(
            f"The upload holds {count} files; at most {settings.max_upload_files} are accepted per "
            "request (CITEQA_MAX_UPLOAD_FILES). Send them in several uploads.",
        )


def check_articles(documents: Sequence[Document], settings: Settings) -> None:
    """UploadTooLarge if an upload holds an article longer than CITEQA_MAX_ARTICLE_CHARS (each such article
    named in the details)."""
    too_long = [d for d in documents if len(d.text) > settings.max_article_chars]
    if too_long:
        raise UploadTooLarge(
            f"{len(too_long)} article(s) are longer than {settings.max_article_chars:,} characters "
            "(CITEQA_MAX_ARTICLE_CHARS): split them, or raise the limit. Nothing was queued.",
            details=[{"source": d.source, "title": d.title, "characters": len(d.text)} for d in too_long],
        )


def check_filters(filters: SearchFilters, settings: Settings) -> None:
    """TooManyFilterValues if a filter lists more values than CITEQA_MAX_FILTER_VALUES."""
    for name, values in (("sections", filters.sections), ("doc_ids", filters.doc_ids)):
        if len(values) > settings.max_filter_values:
            raise TooManyFilterValues(
                f"filters.{name} lists {len(values)} values; at most {settings.max_filter_values} are accepted "
                "(CITEQA_MAX_FILTER_VALUES). Filter by section, or search without the filter.",
            )
