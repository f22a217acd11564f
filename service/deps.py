"""Request dependencies: the resources the app was built with, reached through the request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.errors import ServiceError
from service.resources import Resources


class NotReady(ServiceError):
    """The model or the index is still loading."""

    status_code = 503


def get_resources(request: Request) -> Resources:
    resources: Resources | None = getattr(request.app.state, "resources", None)
    if resources is None:
        raise NotReady("The service is still loading the model and the index; retry in a few seconds.")
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]
