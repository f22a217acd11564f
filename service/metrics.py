"""Prometheus metrics of one app instance (its own registry: no process-wide state)."""

from __future__ import annotations

import time

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

# Labels come from fixed sets: the route's template (or "unmatched") and these methods (or "other"). A label
# taken from the request as sent would let any client add series, 17 per label set, without end.
METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "citeqa_http_requests",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "citeqa_http_request_seconds",
            "Time to answer an HTTP request.",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    def install(self, app: FastAPI) -> None:
        @app.middleware("http")
        async def measure(request: Request, call_next):
            started = time.perf_counter()
            response = await call_next(request)
            method = request.method if request.method in METHODS else "other"
            route = getattr(request.scope.get("route"), "path", "unmatched")
            self.requests.labels(method, route, str(response.status_code)).inc()
            self.latency.labels(method, route).observe(time.perf_counter() - started)
            return response

    def response(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
