"""The document model: what every reader produces and every later stage consumes."""

from __future__ import annotations

import bisect
import hashlib

from pydantic import BaseModel, Field


class PageStart(BaseModel):
    """The page that begins at `char_start` of a document's text."""

    char_start: int = Field(ge=0)
    page: int = Field(ge=1)


class Document(BaseModel):
    """One article: clean text plus what a citation needs to point back into its source."""

    doc_id: str
    title: str
    text: str
    source: str = Field(description="File name (or path) the article was read from.")
    section: str | None = None
    date: str | None = None
    url: str | None = None
    page_map: list[PageStart] = Field(
        default_factory=list,
        description="Sorted by char_start; the page of a position is that of the last entry at or before it.",
    )

    def page_at(self, position: int) -> int | None:
        """The page holding character `position` of `text`, or None when pages are unknown."""
        if not self.page_map:
            return None
        starts = [entry.char_start for entry in self.page_map]
        index = bisect.bisect_right(starts, position) - 1
        return self.page_map[max(index, 0)].page


def make_doc_id(source: str, title: str) -> str:
    """A stable id from where an article came from and its title, so re-ingesting replaces it."""
    digest = hashlib.sha1(f"{source}\x1f{title}".encode()).hexdigest()
    return digest[:16]
