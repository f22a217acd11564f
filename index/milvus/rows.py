"""Rows of the Milvus backend kept in the API process, by collection and id: what spares a search most of
its round trips (docs/PERF.md, "Search over HTTP on the Milvus backend").

Only rows that never change are kept: chunks and sentences. A write gives them new ids (its generation
is part of every id, index.milvus.store) and never rewrites a row, so a row read once is the row for good;
whether it is live (of its document's committed generation) is decided per search, by the snapshot, never
by this cache. Document rows and the state change with every write: they are not kept here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

Row = dict[str, Any]


class RowCache:
    """Up to `most` rows, the least recently used forgotten first; safe to share between threads."""

    def __init__(self, most: int) -> None:
        if most < 1:
            raise ValueError(f"A row cache holds at least one row, not {most}.")
        self.most = most
        self._rows: OrderedDict[tuple[str, int], Row] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._rows)

    def get(
        self, collection: str, ids: Sequence[int], fetch: Callable[[list[int]], Sequence[Row]]
    ) -> dict[int, Row]:
        """The rows of `ids` in `collection`, by id: those kept, and the others read with one `fetch` (which
        leaves out ids it does not find; so does this)."""
        found: dict[int, Row] = {}
        missing: list[int] = []
        with self._lock:
            for row_id in dict.fromkeys(int(i) for i in ids):
                row = self._rows.get((collection, row_id))
                if row is None:
                    missing.append(row_id)
                else:
                    self._rows.move_to_end((collection, row_id))
                    found[row_id] = row
        if not missing:
            return found
        # Read without the lock: other searches go on meanwhile (two reading the same row keep one copy).
        fetched = {int(row["id"]): row for row in fetch(missing)}
        found.update(fetched)
        with self._lock:
            for row_id, row in fetched.items():
                self._rows[(collection, row_id)] = row
            while len(self._rows) > self.most:
                self._rows.popitem(last=False)
        return found
