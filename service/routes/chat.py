from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field, field_validator, model_validator

from citeqa.collections import DEFAULT_COLLECTION
from index.followups import retrieval_query
from index.search import MAX_QUESTION_CHARS, MAX_TOP_K, SearchFilters, SearchResult
from index.text import question_terms
from service.deps import ReadGrant
from service.limits import check_filters
from service.routes.collections import CollectionName
from service.routes.search import SEARCH_ERRORS

router = APIRouter(prefix="/v1", tags=["chat"])

MAX_MESSAGES = 50


class ChatMessage(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(
        min_length=1, max_length=MAX_QUESTION_CHARS, description=f"1–{MAX_QUESTION_CHARS} characters."
    )

    @field_validator("content")
    @classmethod
    def _not_blank(cls, content: str) -> str:
        if not content.strip():
            raise ValueError("is blank: send at least one visible character")
        return content


class ChatRequest(BaseModel):
    messages: list[ChatMessage] = Field(
        min_length=1,
        max_length=MAX_MESSAGES,
        description="The conversation, oldest first; the last message is the question to answer.",
    )
    top_k: int = Field(
        default=5, ge=1, le=MAX_TOP_K, description=f"How many passages to return (1–{MAX_TOP_K})."
    )
    filters: SearchFilters = Field(default_factory=SearchFilters)
    collection: CollectionName = DEFAULT_COLLECTION

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "messages": [
                        {"role": "user", "content": "小米第三季度智能手机销量是多少？"},
                        {"role": "assistant", "content": "小米智能手机销量约为1180万部。"},
                        {"role": "user", "content": "那华为呢？"},
                    ],
                    "top_k": 5,
                }
            ]
        }
    }

    @model_validator(mode="after")
    def _ends_with_a_question(self) -> ChatRequest:
        if self.messages[-1].role != "user":
            raise ValueError("the last message must come from the user: it is the question to answer")
        return self


class ChatResponse(BaseModel):
    query: str = Field(description="The retrieval query actually searched.")
    rewritten: bool = Field(description="True when earlier user turns were merged into the last one.")
    terms: list[str] = Field(description="Words of the query worth marking in passages, longest first.")
    result: SearchResult = Field(description="Exactly what POST /v1/search returns for `query`.")


@router.post(
    "/chat",
    response_model=ChatResponse,
    summary="Answer the last question of a conversation",
    responses=SEARCH_ERRORS,
)
def chat(request: ChatRequest, grant: ReadGrant) -> ChatResponse:
    """Search for the last user message, read in the context of the user messages before it.

    A follow-up such as "那华为呢？" or "and Apple?" after "小米第三季度智能手机销量是多少？" is searched as
    "华为第三季度智能手机销量是多少？" (rules, no language model: see `index/followups.py`). Assistant messages
    are accepted so that a client can send its whole transcript, but they do not change the query.
    """
    check_filters(request.filters, grant.request.app.state.settings)
    built = retrieval_query([m.content for m in request.messages if m.role == "user"])
    result = grant.collection(request.collection).searcher.search(
        built.query, top_k=request.top_k, filters=request.filters
    )
    return ChatResponse(
        query=built.query, rewritten=built.rewritten, terms=question_terms(built.query), result=result
    )
