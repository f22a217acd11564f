from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from citeqa.collections import DEFAULT_COLLECTION
from citeqa.errors import (
    CollectionNotFound,
    IndexModelMismatch,
    InvalidQuestion,
    NotReady,
    TooManyFilterValues,
)
from index.search import (
    DEFAULT_MODE,
    MAX_QUESTION_CHARS,
    MAX_TOP_K,
    SearchFilters,
    SearchMode,
    SearchResult,
)
from service.deps import ReadGrant
from service.limits import check_filters
from service.openapi import error_responses
from service.routes.collections import CollectionName

router = APIRouter(prefix="/v1", tags=["search"])


class SearchRequest(BaseModel):
    question: str = Field(
        min_length=1,
        max_length=MAX_QUESTION_CHARS,
        description=f"The question, in Chinese or English (1–{MAX_QUESTION_CHARS} characters).",
    )
    top_k: int = Field(
        default=5, ge=1, le=MAX_TOP_K, description=f"How many passages to return (1–{MAX_TOP_K})."
    )
    filters: SearchFilters = Field(default_factory=SearchFilters)
    collection: CollectionName = DEFAULT_COLLECTION
    mode: SearchMode = Field(
        default=DEFAULT_MODE, description="hybrid (default: embeddings + keywords), dense or lexical."
    )

    model_config = {
        "json_schema_extra": {
            "examples": [
                {"question": "How many 5G base stations has China built?", "top_k": 5},
                {
                    "question": "近一个月工信部开展了多少次5G调研？",
                    "top_k": 3,
                    "filters": {"sections": ["产业环境"]},
                },
            ]
        }
    }


# What a search can refuse with; POST /v1/chat searches too, and declares the same.
SEARCH_ERRORS = error_responses(
    InvalidQuestion, TooManyFilterValues, CollectionNotFound, IndexModelMismatch, NotReady
)


@router.post(
    "/search",
    response_model=SearchResult,
    summary="Ranked passages that answer a question",
    responses=SEARCH_ERRORS,
)
def search(request: SearchRequest, grant: ReadGrant) -> SearchResult:
    """Embed the question, search the index and return the top passages, each with its citation,
    the sentence that best answers (`answer`, and `highlight` within each passage), and
    `answerable: false` when nothing in the index seems to answer.

    `citation.char_start`/`char_end` locate the passage exactly in the article's text
    (`GET /v1/documents/{doc_id}`); `page` is the report page the passage starts on.
    """
    check_filters(request.filters, grant.request.app.state.settings)
    return grant.collection(request.collection).searcher.search(
        request.question, top_k=request.top_k, filters=request.filters, mode=request.mode
    )
