"""The security headers of every response, and the Content-Security-Policy of the pages.

The policy lets a page run and style only what CiteQA serves: the chat page is native ES modules and a
stylesheet, with no inline script or style, so another site's script injected into it (through an article's
text, say) does not run. A page that has inline blocks of its own, such as the docs pages FastAPI renders,
gets them allowed one by one by their hashes (`allow_own_inline_blocks`), never by 'unsafe-inline'; ReDoc's
page, which writes styles at run time, is the one exception (service/docs.py), for styles only.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import TypeVar

from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# `data:` images: the chat page's empty favicon and Swagger UI's icons.
POLICY = (
    "default-src 'self'",
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
)
HEADERS = {
    "x-content-type-options": "nosniff",  # a JSON or text answer is never run as a script or a page
    "x-frame-options": "DENY",  # for browsers that ignore frame-ancestors: no other site frames a page
    "referrer-policy": "no-referrer",  # document ids and questions in URLs stay on this server
    "content-security-policy": "; ".join(POLICY),
}
# Inline blocks without attributes: those of a page's own template, not loaded from a URL.
INLINE_BLOCK = re.compile(r"<(script|style)>(.*?)</\1>", flags=re.DOTALL)

Page = TypeVar("Page", bound=Response)


def _hash(block: str) -> str:
    return f"'sha256-{base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()}'"


def policy(*directives: str) -> str:
    """The common policy with `directives` added (a directive for scripts, styles or workers)."""
    return "; ".join([*POLICY, *directives])


def allow_own_inline_blocks(page: Page) -> Page:
    """Set `page`'s policy to the common one, plus its own inline scripts and styles by their hashes."""
    sources: dict[str, list[str]] = {"script": [], "style": []}
    for tag, block in INLINE_BLOCK.findall(bytes(page.body).decode()):
        sources[tag].append(_hash(block))
    page.headers["content-security-policy"] = policy(
        *(f"{tag}-src 'self' {' '.join(hashes)}" for tag, hashes in sources.items() if hashes)
    )
    return page


class SecurityHeaders:
    """Adds HEADERS to every HTTP response, keeping a header the response already has."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
