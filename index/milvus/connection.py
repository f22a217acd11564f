"""The calls the Milvus backend makes, each with pymilvus's failures mapped to CiteQAErrors
(`index.milvus.client.mapped_errors`) and each with its fields named (a search or query without
`output_fields` returns every field in milvus-lite, vectors included)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymilvus import MilvusClient

from index.milvus.client import MAX_LIMIT, batches, connect, mapped_errors

# Rows per insert call: bounds a request's size (a row holds a 384-float vector or a text part).
_WRITE_BATCH = 1000
# Rows per page of a query that reads every matching row.
_PAGE = 4096


class Connection:
    """One client of one Milvus server (CITEQA_MILVUS_URI)."""

    def __init__(self, uri: str, token: str = "", database: str = "") -> None:
        self.uri = uri
        self._client: MilvusClient = connect(uri, token, database)

    def close(self) -> None:
        with mapped_errors(self.uri):
            self._client.close()

    # -- collections -------------------------------------------------------------------------------------

    def list_collections(self) -> list[str]:
        with mapped_errors(self.uri):
            return list(self._client.list_collections())

    def has_collection(self, name: str) -> bool:
        with mapped_errors(self.uri):
            return bool(self._client.has_collection(name))

    def create_collection(self, name: str, schema: Any, index_params: Any = None) -> None:
        with mapped_errors(self.uri):
            self._client.create_collection(
                name, schema=schema, index_params=index_params, consistency_level="Strong"
            )

    def load_collection(self, name: str) -> None:
        """Load a collection for searching: a server restart leaves them released (idempotent)."""
        with mapped_errors(self.uri):
            self._client.load_collection(name)

    def drop_collection(self, name: str) -> None:
        with mapped_errors(self.uri):
            if self._client.has_collection(name):
                self._client.drop_collection(name)

    # -- rows ----------------------------------------------------------------------------------------------

    def insert(self, name: str, rows: Sequence[dict[str, Any]]) -> None:
        with mapped_errors(self.uri):
            for batch in batches(rows, _WRITE_BATCH):
                self._client.insert(name, list(batch))

    def upsert(self, name: str, rows: Sequence[dict[str, Any]]) -> None:
        with mapped_errors(self.uri):
            for batch in batches(rows, _WRITE_BATCH):
                self._client.upsert(name, list(batch))

    def delete(self, name: str, expression: str) -> None:
        with mapped_errors(self.uri):
            self._client.delete(name, filter=expression)

    def get(self, name: str, ids: Sequence[int | str], fields: list[str]) -> list[dict[str, Any]]:
        """The rows of some primary keys (those not stored are left out), in no particular order."""
        rows: list[dict[str, Any]] = []
        with mapped_errors(self.uri):
            for batch in batches(list(ids)):
                rows.extend(self._client.get(name, ids=list(batch), output_fields=fields))
        return rows

    def query(self, name: str, expression: str, fields: list[str]) -> list[dict[str, Any]]:
        """Every row matching `expression`, read page by page (Milvus caps one query at MAX_LIMIT rows)."""
        rows: list[dict[str, Any]] = []
        with mapped_errors(self.uri):
            pages = self._client.query_iterator(
                name, batch_size=_PAGE, filter=expression, output_fields=fields
            )
            try:
                while page := pages.next():
                    rows.extend(page)
            finally:
                pages.close()
        return rows

    def search(
        self,
        name: str,
        data: list[Any],
        field: str,
        limit: int,
        fields: list[str],
        expression: str = "",
        params: dict[str, Any] | None = None,
    ) -> list[list[dict[str, Any]]]:
        """The hits of each query in `data` (vectors, or texts for BM25), in one call, best first: each with
        `id`, `distance` and `entity` (the `fields` asked for)."""
        with mapped_errors(self.uri):
            found = self._client.search(
                name,
                data=data,
                anns_field=field,
                limit=min(limit, MAX_LIMIT),
                filter=expression,
                output_fields=fields,
                search_params=params or {},
            )
        return [list(hits) for hits in found]
