from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from citeqa.errors import NotReady
from service.deps import AdminGrant, ResourcesDep
from service.openapi import error_responses

router = APIRouter(tags=["health"])


class Alive(BaseModel):
    status: str = "ok"


class Ready(BaseModel):
    status: str = "ready"
    model: str
    dimension: int
    documents: int
    chunks: int
    sections: list[str]
    vector_indexes: dict[str, str] = Field(
        description="Each kind's vector index (chunks, sentences): flat (exact) or HNSW with its parameters."
    )


@router.get("/healthz", response_model=Alive, summary="The process is up")
def healthz() -> Alive:
    return Alive()


@router.get(
    "/readyz",
    response_model=Ready,
    summary="Model loaded and index open",
    responses=error_responses(NotReady),
)
def readyz(resources: ResourcesDep) -> Ready:
    """The model, and the default collection's counts (`GET /v1/collections` lists every collection's)."""
    store = resources.collection().store
    documents, chunks = store.counts()
    return Ready(
        model=resources.encoder.name,
        dimension=resources.encoder.dimension,
        documents=documents,
        chunks=chunks,
        sections=store.sections(),
        vector_indexes={kind: spec.describe() for kind, spec in store.vector_specs().items()},
    )


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, _: AdminGrant) -> Response:
    """Prometheus metrics; with API keys in use, an admin key's."""
    return request.app.state.metrics.response()
