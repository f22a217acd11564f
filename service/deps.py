"""Request dependencies: the resources the app was built with, and what the caller's key grants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from citeqa.collections import COLLECTION_NAME_PATTERN, DEFAULT_COLLECTION, Collection
from citeqa.errors import NotReady, Unauthorized
from citeqa.wiring import Resources
from service.jobs import JobQueue
from service.keys import ApiKey, KeyStore, Scope


def get_resources(request: Request) -> Resources:
    resources: Resources | None = getattr(request.app.state, "resources", None)
    if resources is None:
        raise NotReady("The service is still loading the model and the index; retry in a few seconds.")
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


def get_jobs(request: Request) -> JobQueue:
    get_resources(request)  # the queue starts once the resources are loaded
    return request.app.state.jobs


JobsDep = Annotated[JobQueue, Depends(get_jobs)]

bearer = HTTPBearer(
    auto_error=False,
    description="An API key (`citeqa keys create`). Needed by every /v1 call once a key exists.",
)


@dataclass(frozen=True)
class Grant:
    """What the caller may do: the scope a route needs, checked; collections, checked when named."""

    request: Request
    key: ApiKey | None
    """The caller's key; None while no key exists (the API is open)."""

    def allows(self, collection: str) -> bool:
        return self.key is None or self.key.reaches(collection)

    def check(self, collection: str) -> None:
        """Forbidden unless the key reaches `collection`."""
        if self.key is not None:
            self.key.check(self.key.scope, collection)

    def collection(self, name: str) -> Collection:
        """The collection `name`, once the key is checked to reach it."""
        self.check(name)
        return get_resources(self.request).collection(name)


class Require:
    """A route's dependency: the caller's key must grant `scope` (while any key exists)."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def __call__(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Grant:
        keys: KeyStore = request.app.state.keys
        if not keys.enabled():
            return Grant(request, None)
        if credentials is None:
            raise Unauthorized(
                "This server needs an API key: send the header `Authorization: Bearer <key>` "
                "(an administrator creates keys with `citeqa keys create`)."
            )
        key = keys.find(credentials.credentials)
        if key is None:
            raise Unauthorized("The API key is not valid: it was revoked or mistyped.")
        key.check(self.scope, None)
        return Grant(request, key)


ReadGrant = Annotated[Grant, Depends(Require("read"))]
WriteGrant = Annotated[Grant, Depends(Require("write"))]
AdminGrant = Annotated[Grant, Depends(Require("admin"))]


def path_collection(request: Request) -> str:
    """The collection named by the path (`/v1/collections/{collection}/...`); the default one on the paths
    that name none (`/v1/documents...`)."""
    return request.path_params.get("collection", DEFAULT_COLLECTION)


PathCollection = Annotated[str, Depends(path_collection)]


def collection_in_path(
    collection: Annotated[
        str,
        Path(
            pattern=COLLECTION_NAME_PATTERN, description="The collection's name (`default`, or one created)."
        ),
    ],
) -> None:
    """Declares and checks the `{collection}` of a path, for routers mounted under one."""
