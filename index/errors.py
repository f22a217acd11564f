"""Errors raised by the index; the service maps each to an HTTP status in one place."""


class IndexStoreError(Exception):
    """Base class for errors about the index and the documents in it."""


class DocumentNotFound(IndexStoreError):
    """No document has the given id."""


class IndexModelMismatch(IndexStoreError):
    """The index was built with another embedding model or dimension than the configured one."""


class IndexLocked(IndexStoreError):
    """Another process holds the index's write lock."""
