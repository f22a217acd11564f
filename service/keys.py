"""API keys: who may call the API, with which scope, on which collections.

Keys live in one JSON file (`CITEQA_KEYS_FILE`, by default `keys.json` in the data folder) as SHA-256
hashes: a key is 32 random bytes, so a plain hash cannot be reversed, and the file never holds a key
itself. A new key is shown once, when it is created. The file is re-read when it changes, so keys that
`citeqa keys create` or `revoke` writes take effect in a running server without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from citeqa.collections import check_collection_name
from citeqa.errors import Forbidden, KeyManagementError
from service.files import write_atomically

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "write", "admin")
"""Each scope grants what the ones before it grant."""
KEY_PREFIX = "citeqa_"


class ApiKey(BaseModel):
    """One key as stored: never the key itself, only its hash."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
    scope: Scope
    collections: list[str] = Field(
        default_factory=list, description="The collections it may use; empty: every collection."
    )
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    created: datetime

    def grants(self, scope: Scope) -> bool:
        return SCOPES.index(self.scope) >= SCOPES.index(scope)

    def reaches(self, collection: str) -> bool:
        return not self.collections or collection in self.collections

    def check(self, scope: Scope, collection: str | None) -> None:
        """Forbidden unless this key grants `scope` on `collection` (None: no particular collection)."""
        if not self.grants(scope):
            raise Forbidden(
                f"The key {self.name!r} has scope {self.scope!r}; this call needs {scope!r}. "
                f"Create a key with `citeqa keys create --scope {scope}`."
            )
        if collection is not None and not self.reaches(collection):
            raise Forbidden(
                f"The key {self.name!r} may use the collections {', '.join(self.collections)}, "
                f"not {collection!r}."
            )


class KeyFile(BaseModel):
    keys: list[ApiKey] = Field(default_factory=list)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    """The keys of one key file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._loaded: tuple[tuple[int, int] | None, KeyFile] = (None, KeyFile())

    def keys(self) -> list[ApiKey]:
        """Every key, as the file holds it now."""
        with self._lock:
            return list(self._read().keys)

    def enabled(self) -> bool:
        """Whether any key exists: then every /v1 call needs one."""
        return bool(self.keys())

    def find(self, key: str) -> ApiKey | None:
        """The stored key that `key` is, or None. Compares with every stored hash in constant time."""
        digest = _digest(key)
        found = None
        for stored in self.keys():
            if hmac.compare_digest(stored.sha256, digest):
                found = stored
        return found

    def create(self, name: str, scope: Scope, collections: list[str] | None = None) -> tuple[ApiKey, str]:
        """A new key named `name`: its stored form and the key itself (shown once, never stored)."""
        for collection in collections or []:
            check_collection_name(collection)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._lock:
            current = self._read()
            if any(k.name == name for k in current.keys):
                raise KeyManagementError(
                    f"A key named {name!r} exists already; revoke it first or choose another name."
                )
            try:
                stored = ApiKey(
                    name=name,
                    scope=scope,
                    collections=sorted(set(collections or [])),
                    sha256=_digest(key),
                    created=datetime.now(UTC),
                )
            except ValueError:
                raise KeyManagementError(
                    f"{name!r} cannot name a key: use 1–64 letters, digits, '_', '.', '@' or '-'."
                ) from None
            self._write(KeyFile(keys=[*current.keys, stored]))
        return stored, key

    def revoke(self, name: str) -> None:
        with self._lock:
            current = self._read()
            kept = [k for k in current.keys if k.name != name]
            if len(kept) == len(current.keys):
                raise KeyManagementError(f"No key named {name!r}; `citeqa keys list` shows them.")
            self._write(KeyFile(keys=kept))

    def _read(self) -> KeyFile:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._loaded = (None, KeyFile())
            return self._loaded[1]
        version = (stat.st_mtime_ns, stat.st_size)
        if self._loaded[0] != version:
            try:
                self._loaded = (version, KeyFile.model_validate_json(self.path.read_bytes()))
            except ValueError as error:
                raise KeyManagementError(
                    f"The key file {self.path} cannot be read ({error}); restore or delete it."
                ) from None
        return self._loaded[1]

    def _write(self, content: KeyFile) -> None:
        write_atomically(self.path, content.model_dump_json(indent=2), mode=0o600)
        self._loaded = (None, content)
