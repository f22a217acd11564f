"""Collections: list, create and delete the named indexes of the data folder."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status
from pydantic import BaseModel, Field

from citeqa.collections import COLLECTION_NAME_PATTERN, COLLECTION_NAME_RULE, Collection
from citeqa.errors import CollectionExists, CollectionNotFound, InvalidCollectionName, NotReady
from service.deps import AdminGrant, ReadGrant, ResourcesDep
from service.openapi import error_responses

CollectionName = Annotated[
    str,
    Field(
        pattern=COLLECTION_NAME_PATTERN,
        description=f"A collection's name ({COLLECTION_NAME_RULE}); `default` unless given.",
        examples=["default"],
    ),
]

router = APIRouter(prefix="/v1/collections", tags=["collections"])


class CollectionInfo(BaseModel):
    name: str
    documents: int
    chunks: int
    sections: list[str] = Field(description="The sections its documents belong to, for filters.")


class CollectionList(BaseModel):
    collections: list[CollectionInfo]


class NewCollection(BaseModel):
    name: CollectionName


class DeletedCollection(BaseModel):
    name: str
    deleted: bool = True


def _info(collection: Collection) -> CollectionInfo:
    documents, chunks = collection.store.counts()
    return CollectionInfo(
        name=collection.name, documents=documents, chunks=chunks, sections=collection.store.sections()
    )


@router.get(
    "",
    response_model=CollectionList,
    summary="Every collection, with its counts",
    responses=error_responses(NotReady),
)
def list_collections(resources: ResourcesDep, grant: ReadGrant) -> CollectionList:
    """The collections the caller's key reaches (all of them while no key exists)."""
    names = [name for name in resources.collections.names() if grant.allows(name)]
    return CollectionList(collections=[_info(resources.collection(name)) for name in names])


@router.post(
    "",
    response_model=CollectionInfo,
    status_code=status.HTTP_201_CREATED,
    summary="Create an empty collection",
    responses=error_responses(CollectionExists, NotReady),
)
def create_collection(body: NewCollection, resources: ResourcesDep, grant: AdminGrant) -> CollectionInfo:
    """Add documents to it with `POST /v1/collections/{name}/documents`; search it with `"collection"` in
    the body of `POST /v1/search` or `/v1/chat`."""
    grant.check(body.name)
    return _info(resources.collections.create(body.name))


@router.delete(
    "/{name}",
    response_model=DeletedCollection,
    summary="Delete a collection and its documents",
    responses=error_responses(InvalidCollectionName, CollectionNotFound, NotReady),
)
def delete_collection(
    name: Annotated[str, Path(pattern=COLLECTION_NAME_PATTERN)], resources: ResourcesDep, grant: AdminGrant
) -> DeletedCollection:
    grant.check(name)
    resources.collections.delete(name)
    return DeletedCollection(name=name)
