"""What stands between a request and a route: the body limit, the API key, and errors as JSON."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..events import EventRejected
from ..service import InvalidInput, NotReady, StoreUnavailable
from ..supplied_features import InvalidFeatures
from .responses import error_response
from .schemas import MAX_BODY_BYTES, ErrorResponse

log = logging.getLogger("tailor.runtime")

# --- request body limit ---


class BodyLimit:
    """Answer 413 to bodies over ``limit`` bytes, before they are read into memory.

    A declared Content-Length is checked up front; a chunked body is counted
    as it streams and cut off when it passes the limit.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > limit:
                    await error_response(413, _too_large(limit))(scope, receive, send)
                    return
                await self.app(scope, receive, send)  # the server holds the body to its declared length
                return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, _too_large(limit))
            return message

        await self.app(scope, counted, send)


def _too_large(limit: int) -> str:
    return f"the request body is larger than {limit} bytes"


# --- errors ---

MAX_LISTED_ERRORS = 20


def _where(loc: Sequence[Any]) -> str:
    parts = list(loc[1:] if loc and loc[0] in ("body", "path", "query", "header") else loc)
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part == "[key]":
            text += " (the key)"
        else:
            shown = str(part) if len(str(part)) <= 40 else str(part)[:37] + "..."
            shown = shown or '""'
            text += f".{shown}" if text else shown
    return text or "body"


def validation_messages(exc: RequestValidationError | ValidationError) -> list[str]:
    """One line per problem, naming the field: ``events[3].ts: Input should be a valid number``
    (for a request body, and for a stream record: ``stream_records.py``)."""
    messages = []
    for problem in exc.errors():
        message = str(problem.get("msg", "invalid"))
        message = message.removeprefix("Value error, ")
        if problem.get("type") == "json_invalid":
            context = problem.get("ctx") or {}
            message = f"the body is not valid JSON ({context.get('error', 'decode error')})"
            messages.append(message)
            continue
        messages.append(f"{_where(problem.get('loc', ()))}: {message}")
    return list(dict.fromkeys(messages))


def install_error_handlers(app: FastAPI) -> None:
    """Every failure is a JSON ``{"detail": ...}``; bad input is a 4xx, never a 500."""

    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return _invalid(validation_messages(exc))

    async def invalid_features(request: Request, exc: InvalidFeatures) -> Response:
        return _invalid([f"features.{key} (the key): {why}" for key, why in exc.problems])

    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    async def rejected(request: Request, exc: EventRejected | InvalidInput) -> Response:
        return error_response(422, str(exc))

    async def unavailable(request: Request, exc: StoreUnavailable) -> Response:
        return error_response(503, str(exc))

    async def not_ready(request: Request, exc: NotReady) -> Response:
        return error_response(503, str(exc))

    async def crashed(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal error")

    app.add_exception_handler(RequestValidationError, invalid)  # type: ignore[arg-type]
    app.add_exception_handler(InvalidFeatures, invalid_features)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(EventRejected, rejected)  # type: ignore[arg-type]
    app.add_exception_handler(InvalidInput, rejected)  # type: ignore[arg-type]
    app.add_exception_handler(StoreUnavailable, unavailable)  # type: ignore[arg-type]
    app.add_exception_handler(NotReady, not_ready)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, crashed)


def _invalid(messages: list[str]) -> Response:
    """A 422 naming every problem (the first few in ``detail``)."""
    detail = "; ".join(messages[:3]) + (f" (and {len(messages) - 3} more)" if len(messages) > 3 else "")
    return error_response(422, detail, messages[:MAX_LISTED_ERRORS])


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error answers of a route, for the schema."""
    described = {
        401: "missing or wrong API key",
        404: "not found: no such experiment (or not its served phase), or a feature the server was started without",
        409: "there is no previous version",
        413: "the body is over the size limit",
        422: "the request is not valid",
        503: "not ready: no ruleset, or the store is unavailable",
    }
    return {code: {"model": ErrorResponse, "description": described[code]} for code in codes}


# --- authentication ---

OPEN_PATHS = ("/healthz", "/readyz", "/metrics")  # for probes and scrapers: never behind the key

bearer = HTTPBearer(auto_error=False, description="the API key given to tailor serve, as a bearer token")


def require_key(api_key: str):
    """A dependency that lets a request through only with ``Authorization: Bearer KEY``."""
    if not api_key.strip():
        raise ValueError("the API key is empty: a secret that failed to mount must not turn authentication off")
    expected = api_key.encode()

    async def check(credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> None:
        given = credentials.credentials.encode() if credentials is not None else b""
        if not hmac.compare_digest(given, expected):
            raise HTTPException(401, "a valid API key is required", headers={"WWW-Authenticate": "Bearer"})

    return check


def authentication(api_key: str | None, public_decisions: bool = False) -> str:
    """What the startup log says of who may call what, in one line."""
    if api_key is None:
        return "authentication: none (no API key set)"
    line = f"authentication: API key required on every endpoint except {', '.join(OPEN_PATHS)}"
    return line + ("; /v1/decide is public (--public-decisions)" if public_decisions else "")
