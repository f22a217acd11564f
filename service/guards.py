"""Requests refused for where they come from, before any route sees them.

- A Host header that names none of CITEQA_ALLOWED_HOSTS: 400. Without this check, a web page whose domain
  an attacker points at 127.0.0.1 (DNS rebinding) could read and write the index of a server that listens
  only on this machine: the browser takes it for the attacker's own site.
- A write whose Origin header names another origin than the server's: 403. The browser sends a form or a
  "simple" fetch of another site's page without asking first (no CORS preflight), so without this check any
  page a user visits could upload or delete documents through the user's browser. Clients that send no
  Origin (curl, scripts, the CLI) are not browsers acting for another site, and go through.

Starlette's TrustedHostMiddleware answers in plain text and splits an IPv6 Host header at its first
colon; this one answers with the ErrorBody of every other error and reads `[::1]:8000` as `::1`.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from citeqa.errors import CiteQAError, CrossOriginWrite, HostNotAllowed
from service.errors import citeqa_error_response

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def host_name(host: str) -> str:
    """The name in a Host header, without its port, in lower case: `[::1]:8000` → `::1`."""
    if host.startswith("["):
        return host[1:].partition("]")[0].lower()
    return host.partition(":")[0].lower()


def host_allowed(name: str, allowed: Sequence[str]) -> bool:
    """Whether `name` is one of `allowed`: a name, `*.domain` for the domain's subdomains, or `*` for any."""
    return any(
        pattern in ("*", name) or (pattern.startswith("*.") and name.endswith(pattern[1:]))
        for pattern in allowed
    )


class RequestGuard:
    """Refuses, with the error's JSON body, a request to a host not allowed and a cross-origin write."""

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self.allowed_hosts = list(allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self.refusal(scope) if scope["type"] == "http" else None
        if refusal is None:
            await self.app(scope, receive, send)
            return
        await citeqa_error_response(refusal)(scope, receive, send)

    def refusal(self, scope: Scope) -> CiteQAError | None:
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        name = host_name(host)
        if not host_allowed(name, self.allowed_hosts):
            return HostNotAllowed(
                f"This server does not answer to the host name '{name}'. If that is how clients reach it, "
                "add it to CITEQA_ALLOWED_HOSTS (comma-separated) and restart CiteQA."
            )
        origin = headers.get("origin")
        # Browsers send Origin and Host without the scheme's default port, so comparing the two as written
        # holds behind a proxy that ends TLS too (the page is https, the server sees http).
        if (
            scope["method"] in WRITE_METHODS
            and origin is not None
            and urlsplit(origin).netloc.lower() != host.lower()
        ):
            return CrossOriginWrite(
                f"Refused a {scope['method']} sent by a page of '{origin}' to this server ('{host}'): another "
                "site may not change the index through a visitor's browser. Send it from CiteQA's own "
                "pages, or from a client that sends no Origin header (curl, a script)."
            )
        return None
