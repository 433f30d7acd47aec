"""What wraps every request: the body-size limit (413 before any handler), the latency
histogram by method, route and status, and the handlers that render every error as
problem+json (see problems.py)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eventgate.engine.observability import EngineMetrics
from eventgate.engine.problems import (
    PROBLEM_JSON,
    Problem,
    ProblemError,
    on_http,
    on_problem,
    on_validation,
)

MAX_BODY_BYTES = 1024 * 1024
# Any other method is counted as OTHER: a client must not mint new label values.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class BodyLimit:
    """Refuse request bodies over the limit with 413 before any handler sees them."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared and declared.isdigit() and int(declared) > self.limit:
            await self._too_large(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = Problem(title="Request body too large", status=413,
                          detail=f"request bodies are limited to {self.limit} bytes")
        response = JSONResponse(problem.model_dump(), status_code=413, media_type=PROBLEM_JSON)
        await response(scope, receive, send)


async def time_requests(request: Request,
                        call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Observe the request's latency in the engine's histogram, labelled by route template."""
    metrics: EngineMetrics = request.app.state.metrics
    started = time.perf_counter()
    status = 500  # unless a response comes back: an exception is a failed request too
    try:
        response = await call_next(request)
        status = response.status_code
        return response
    finally:
        route = getattr(request.scope.get("route"), "path", "unmatched")
        method = request.method if request.method in KNOWN_METHODS else "OTHER"
        metrics.latency.labels(method, route, str(status)).observe(
            time.perf_counter() - started)


def install(app: FastAPI) -> None:
    """Problem+json error handlers, and the middleware: the timing is added last, so it is
    the outermost and a request refused with 413 is counted too."""
    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_middleware(BodyLimit)
    app.add_middleware(BaseHTTPMiddleware, dispatch=time_requests)
