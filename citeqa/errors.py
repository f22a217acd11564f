"""Every error CiteQA raises on purpose, in one tree under `CiteQAError`.

An error here is a failure the user can fix, and its message says how. The HTTP layer maps each class to
a status code in one table (service/errors.py); the CLI prints the message without a traceback. Anything
else that escapes is a bug: a 500 with a generic body on the API, a traceback with `citeqa --verbose`.
"""

from __future__ import annotations

from typing import Any


class CiteQAError(Exception):
    """A failure the user can fix; `details` lists what to fix, item by item."""

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class InvalidSettings(CiteQAError):
    """A `CITEQA_*` setting has a value it cannot take."""


class InvalidQuestion(CiteQAError):
    """A question is blank or longer than the limit."""


class UnknownSearchMode(CiteQAError):
    """A search mode that does not exist was asked for."""


class NotReady(CiteQAError):
    """The model or the index is still loading."""


# -- where an HTTP request comes from -----------------------------------------------------------------


class HostNotAllowed(CiteQAError):
    """The request's Host header names none of CITEQA_ALLOWED_HOSTS."""


class CrossOriginWrite(CiteQAError):
    """A write (POST, PUT, PATCH, DELETE) was sent by a web page of another origin than the server's."""


# -- the embedding model ----------------------------------------------------------------------------


class EmbeddingModelError(CiteQAError):
    """The embedding model could not be found, prepared or loaded."""


class EmbeddedModelError(EmbeddingModelError):
    """The bundled model could not be found, converted or verified."""


# -- documents and the index ------------------------------------------------------------------------


class ReportFormatError(CiteQAError):
    """A text meant as a monthly report has no table of contents, or its contents do not match its body."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class UploadRejected(CiteQAError):
    """An uploaded file held no article that could be read."""


class RequestTooLarge(CiteQAError):
    """A request body larger than the server accepts (CITEQA_MAX_REQUEST_KB)."""

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None, *, limit: int = 0) -> None:
        super().__init__(message, details)
        self.limit = limit
        """The limit passed, in bytes (0 where the limit is not one of bytes)."""


class UploadTooLarge(RequestTooLarge):
    """An upload larger than CITEQA_MAX_UPLOAD_MB, with more files than CITEQA_MAX_UPLOAD_FILES, or an article
    longer than CITEQA_MAX_ARTICLE_CHARS."""


class TooManyFilterValues(CiteQAError):
    """A search filter lists more values than CITEQA_MAX_FILTER_VALUES."""


class JobNotFound(CiteQAError):
    """No ingest job has the given id."""


class JobQueueFull(CiteQAError):
    """As many ingest jobs wait as the server queues (CITEQA_MAX_QUEUED_JOBS)."""


class IndexStoreError(CiteQAError):
    """About the index and the documents in it."""


class DocumentNotFound(IndexStoreError):
    """No document has the given id."""


class IndexModelMismatch(IndexStoreError):
    """The index was built with another embedding model or dimension than the configured one."""


class IndexLocked(IndexStoreError):
    """Another process holds the index's write lock."""


class BackendUnavailable(IndexStoreError):
    """The Milvus server of CITEQA_MILVUS_URI does not answer."""


class BackendFailed(IndexStoreError):
    """The Milvus server refused a request CiteQA made (its message says why)."""


# -- collections ----------------------------------------------------------------------------------


class CollectionError(CiteQAError):
    """About the collections of the data folder."""


class InvalidCollectionName(CollectionError):
    """A collection name that cannot name a folder safely, or an action the default collection refuses."""


class CollectionNotFound(CollectionError):
    """No collection has the given name."""


class CollectionExists(CollectionError):
    """A collection with that name exists already."""


# -- access -----------------------------------------------------------------------------------------


class Unauthorized(CiteQAError):
    """A call without a key, or with a key that does not exist, while keys are in use."""


class Forbidden(CiteQAError):
    """A key that does not grant the scope or the collection of a call, or a write from another origin."""


class KeyManagementError(CiteQAError):
    """A key name that cannot be used or does not exist, or an unreadable key file."""


# -- evaluation -------------------------------------------------------------------------------------


class EvalError(CiteQAError):
    """An evaluation cannot run as asked."""


class EvalConfigError(EvalError):
    """The options of an evaluation contradict each other or miss something."""


class CorpusError(EvalError):
    """The corpus of an evaluation is missing or holds no article."""


class QuestionFileError(EvalError):
    """A question file cannot be read, or a line of it is not a valid question."""
