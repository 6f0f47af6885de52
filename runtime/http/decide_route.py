"""``POST /v1/decide`` on a short path: the one route every page view calls.

A decision is cheap (tens of microseconds in the engine), so the framework
around it is most of what a request costs: FastAPI's routing, dependency
solving, body parsing, its response machinery and each middleware's wrapping.
``DecideShortPath`` sits in front of the app's middleware and answers a
well-formed decision request itself: the body read in one go, parsed and
validated in one step by the same ``DecideRequest`` model the route declares
(its JSON mode, which keeps integers of any size as the route's parser does),
decided by the same function, and the answer written as one message.

Anything else goes on to the app unchanged, so every answer but a served
decision comes from the one place that describes it (the route, in OpenAPI):
another method or path, a body over the limit or sent in chunks, another
content type, a missing or wrong API key, a body the model rejects (JSON
its parser refuses, such as NaN or a lone surrogate, included); the route
then answers 413, 401 or 422 with its reason. A failure while deciding is
answered by the app's own handler for it (a 503 for an unavailable store, a
422 for invalid features); one without a handler is raised to the app's
outermost error middleware, as from the route.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .responses import json_body, json_headers
from .schemas import DecideRequest

PATH = "/v1/decide"
JSON = b"application/json"

Decide = Callable[[DecideRequest], Awaitable[dict[str, Any]]]
Handler = Callable[[Request, Exception], Awaitable[Response]]


class DecideShortPath:
    """An ASGI middleware answering valid ``POST /v1/decide`` requests with ``decide``; the rest to ``app``.

    ``key`` is the bearer token the route requires (None: none); ``limit`` the body limit in bytes;
    ``handlers`` the app's exception handlers by class (read at each failure, so handlers installed
    after this middleware count). A subclass serves another route the same way: its ``path`` and the
    ``model`` its body is (``write_routes.py``).
    """

    path = PATH
    model: type[BaseModel] = DecideRequest

    def __init__(
        self,
        app: ASGIApp,
        decide: Decide,
        limit: int,
        handlers: Mapping[Any, Handler],
        key: str | None = None,
    ):
        self.app = app
        self.decide = decide
        self.limit = limit
        self.handlers = handlers
        self.authorization = b"Bearer " + key.encode() if key is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        length = -1
        json = authorized = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = int(value) if value.isdigit() else -1
            elif name == b"content-type":
                json = value == JSON
            elif name == b"authorization" and self.authorization is not None:
                authorized = hmac.compare_digest(value, self.authorization)
        if not json or not 0 <= length <= self.limit or (self.authorization is not None and not authorized):
            await self.app(scope, receive, send)
            return
        body, whole = await _read(receive, length)
        if not whole:  # the client went away, or sent other than it declared: the app says what
            await self.app(scope, _replay(body, receive), send)
            return
        try:
            request = self.model.model_validate_json(body)
        except ValidationError:
            await self.app(scope, _replay(body, receive), send)
            return
        try:
            answer = await self.decide(request)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            response = await handler(Request(scope, receive), exc)
            await response(scope, receive, send)
            return
        body = json_body(answer)  # what OrjsonResponse(answer) sends, without building one
        await send({"type": "http.response.start", "status": 200, "headers": json_headers(body)})
        await send({"type": "http.response.body", "body": body})

    def _handler(self, exc: Exception) -> Handler | None:
        """The app's handler for ``exc``, as its exception middleware would pick it; None for the catch-all."""
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None
            handler = self.handlers.get(cls)
            if handler is not None:
                return handler
        return None


async def _read(receive: Receive, length: int) -> tuple[bytes, bool]:
    """The body as far as it was read, and whether it came whole and as long as declared."""
    chunks: list[bytes] = []
    seen = 0
    whole = False
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        seen += len(chunk)
        chunks.append(chunk)
        if seen > length:
            break
        if not message.get("more_body", False):
            whole = seen == length
            break
    return (chunks[0] if len(chunks) == 1 else b"".join(chunks)), whole


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` with the body already read given again first."""
    given = False

    async def replayed() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
