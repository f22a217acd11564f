"""Request dependencies: the resources the app was built with, and the collection a request names."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from citeqa.collections import COLLECTION_NAME_PATTERN, DEFAULT_COLLECTION, Collection
from citeqa.errors import NotReady
from citeqa.wiring import Resources


def get_resources(request: Request) -> Resources:
    resources: Resources | None = getattr(request.app.state, "resources", None)
    if resources is None:
        raise NotReady("The service is still loading the model and the index; retry in a few seconds.")
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


def get_collection(request: Request, resources: ResourcesDep) -> Collection:
    """The collection named by the path (`/v1/collections/{collection}/...`); the default one on the paths
    that name none (`/v1/documents...`)."""
    return resources.collection(request.path_params.get("collection", DEFAULT_COLLECTION))


CollectionDep = Annotated[Collection, Depends(get_collection)]


def collection_in_path(
    collection: Annotated[
        str,
        Path(
            pattern=COLLECTION_NAME_PATTERN, description="The collection's name (`default`, or one created)."
        ),
    ],
) -> None:
    """Declares and checks the `{collection}` of a path, for routers mounted under one."""
