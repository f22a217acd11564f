"""Request dependencies: the resources the app was built with, reached through the request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from citeqa.errors import NotReady
from citeqa.wiring import Resources


def get_resources(request: Request) -> Resources:
    resources: Resources | None = getattr(request.app.state, "resources", None)
    if resources is None:
        raise NotReady("The service is still loading the model and the index; retry in a few seconds.")
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]
