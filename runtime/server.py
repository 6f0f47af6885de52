"""The HTTP API: a FastAPI app over a ``DecisionService``.

Every request body is a typed model with limits, so bad input is a 4xx with
a readable message before any engine code runs; responses are built as
plain dicts and written with orjson (the pydantic response models below
describe them in the OpenAPI schema without re-validating every response).

``serve`` runs it with uvicorn on uvloop and httptools; ``tailor serve`` is
a thin layer over it.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import math
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

import orjson
from fastapi import Depends, FastAPI, HTTPException, Request, Security
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, Strict, StringConstraints, WithJsonSchema
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tailor.compiler.plan import PredicateStats

from .buckets import Scheme
from .events import DEFAULT_RETENTION, Event, EventRejected
from .loading import load
from .reload import Reloader
from .service import (
    DEFAULT_DEADLINE_MS,
    DEFAULT_SAMPLE_EVERY,
    DecisionService,
    InvalidInput,
    NotReady,
    StoreUnavailable,
)
from .store import FeatureStore

log = logging.getLogger("tailor.runtime")

# --- limits ---

MAX_BODY_BYTES = 1 << 20  # 1 MiB
MAX_ID = 256  # user ids, event ids, keys
MAX_NAME = 128  # slot, context, attribute and event type names
MAX_FEATURE_TEXT = 512  # canonical feature text such as views("Electronics", 24h)
MAX_TEXT = 4096  # a string value
MAX_SLOTS = 64
MAX_CONTEXT = 256
MAX_FEATURES = 1024
MAX_ATTRIBUTES = 256
MAX_EVENTS = 1000
MAX_LIST = 256
MAX_EPOCH = 1e11  # epoch seconds: about the year 5138
INT64 = (-(2**63), 2**63 - 1)

# --- request models ---


def _scalar(value: Any) -> Any:
    """A feature value: a string, a finite number, a boolean or null (one clear error otherwise)."""
    kind = type(value)
    if value is None or kind is bool:
        return value
    if kind is str:
        if len(value) > MAX_TEXT:
            raise ValueError(f"strings are at most {MAX_TEXT} characters")
        return value
    if kind is int:
        if not INT64[0] <= value <= INT64[1]:
            raise ValueError("integers must fit in 64 bits")
        return value
    if kind is float:
        if not math.isfinite(value):
            raise ValueError("numbers must be finite")
        return value
    raise ValueError("expected a string, a number, true, false or null")


SCALAR_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "maxLength": MAX_TEXT},
        {"type": "integer", "minimum": INT64[0], "maximum": INT64[1]},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
    ]
}
Scalar = Annotated[Any, PlainValidator(_scalar), WithJsonSchema(SCALAR_SCHEMA)]


def _attribute(value: Any) -> Any:
    """A profile attribute: a feature value, or a list of them."""
    if type(value) is list:
        if len(value) > MAX_LIST:
            raise ValueError(f"lists hold at most {MAX_LIST} values")
        return [_scalar(item) for item in value]
    return _scalar(value)


Attribute = Annotated[
    Any,
    PlainValidator(_attribute),
    WithJsonSchema({"anyOf": [SCALAR_SCHEMA, {"type": "array", "items": SCALAR_SCHEMA, "maxItems": MAX_LIST}]}),
]
Id = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=MAX_ID)]
Name = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=MAX_NAME)]
FeatureText = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=MAX_FEATURE_TEXT)]
Epoch = Annotated[float, Strict(), Field(ge=0, le=MAX_EPOCH, allow_inf_nan=False, description="epoch seconds")]
Finite = Annotated[float, Strict(), Field(allow_inf_nan=False)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not silently ignored


class DecideRequest(_Body):
    user_id: Id
    context: dict[Name, Scalar] = Field(
        default_factory=dict, max_length=MAX_CONTEXT, description="request attributes: context.NAME in rules"
    )
    slots: list[Name] | None = Field(
        default=None, max_length=MAX_SLOTS, description="the slots to decide; every slot of the ruleset when absent"
    )
    features: dict[FeatureText, Scalar] = Field(
        default_factory=dict,
        max_length=MAX_FEATURES,
        description='values by canonical feature text (user.tier, views("Electronics", 24h)); override the store',
    )
    at: Epoch | None = Field(default=None, description="decide as of this time (epoch seconds), for replay")


class EventIn(_Body):
    user_id: Id
    type: Name
    key: Annotated[str, Strict(), StringConstraints(max_length=MAX_ID)] | None = None
    value: Finite | None = Field(default=None, description="what total() sums; 1 when absent")
    ts: Epoch | None = Field(default=None, description="when it happened; the store's clock when absent")
    id: Id | None = Field(default=None, description="for de-duplication of retried batches (24 h)")


class EventsRequest(_Body):
    events: list[EventIn] = Field(max_length=MAX_EVENTS)


class ProfileRequest(_Body):
    attributes: dict[Name, Attribute] = Field(
        max_length=MAX_ATTRIBUTES, description="user.NAME values to set; null deletes the attribute"
    )


# --- response models (for the schema: responses are written directly) ---


class RulesetRef(BaseModel):
    name: str
    version: str


class SlotOut(BaseModel):
    content: str
    payload: dict[str, Any] | None
    rule: str | None = Field(description="the rule that won; null when the slot's default was served")


class DecideResponse(BaseModel):
    decision_id: str
    ruleset: RulesetRef
    slots: dict[str, SlotOut | None] = Field(description="null: nothing to show in that slot")
    degraded: bool = Field(description="the store could not be read in time: rules needing it did not fire")


class CandidateOut(BaseModel):
    rule: str
    priority: int
    content: str
    won: bool
    reason: str
    file: str
    line: int


class SlotTraceOut(BaseModel):
    slot: str
    served: Literal["rule", "default", "nothing"]
    decision: SlotOut | None
    candidates: list[CandidateOut]
    outranked: int = Field(description="rules ranked below the winner, never looked at")


class ExplanationOut(BaseModel):
    slots: dict[str, SlotTraceOut]
    fetched: list[str]
    models: dict[str, Any]
    values: dict[str, Any] = Field(description="every feature value the decision read, by feature text")


class ExplainResponse(DecideResponse):
    explain: ExplanationOut


class EventsResponse(BaseModel):
    accepted: int
    duplicates: int = Field(description="ids already seen in the last 24 h")
    conflicts: int = Field(description="ids already seen in the last 24 h with another payload: ignored")
    expired: int = Field(description="older than the retention horizon: accepted and ignored")


class ProfileResponse(BaseModel):
    user_id: str
    updated: int
    deleted: int


class RuleOut(BaseModel):
    name: str
    slot: str
    priority: int
    content: str
    file: str
    line: int


class RelatedOut(BaseModel):
    message: str
    file: str
    line: int
    column: int


class DiagnosticOut(BaseModel):
    file: str
    line: int
    column: int
    severity: Literal["error", "warning"]
    code: str
    message: str
    end_line: int | None = None
    end_column: int | None = None
    hint: str | None = None
    related: list[RelatedOut] | None = None


class VersionOut(BaseModel):
    version: str
    loaded_at: datetime


class RulesetResponse(BaseModel):
    name: str
    version: str
    files: list[str]
    loaded_at: datetime
    rules: list[RuleOut]
    last_error: list[DiagnosticOut] | None = Field(description="why the newest edit did not compile, if it did not")
    previous: list[VersionOut] = Field(description="versions a rollback returns to, newest first")


class PredicateCount(BaseModel):
    evaluated: int
    held: int


class StatsResponse(BaseModel):
    predicates: dict[str, PredicateCount]


class Status(BaseModel):
    status: str


class ErrorResponse(BaseModel):
    detail: str
    errors: list[str] | None = None


class OrjsonResponse(JSONResponse):
    """JSON written by orjson: several times faster than the standard library for decision bodies."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


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
                    await _too_large(limit)(scope, receive, send)
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
                    raise HTTPException(413, _too_large_text(limit))
            return message

        await self.app(scope, counted, send)


def _too_large_text(limit: int) -> str:
    return f"the request body is larger than {limit} bytes"


def _too_large(limit: int) -> Response:
    return OrjsonResponse({"detail": _too_large_text(limit)}, status_code=413)


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


def validation_messages(exc: RequestValidationError) -> list[str]:
    """One line per problem, naming the field: ``events[3].ts: Input should be a valid number``."""
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


def _error(
    status: int, detail: str, errors: list[str] | None = None, headers: dict[str, str] | None = None
) -> Response:
    body: dict[str, Any] = {"detail": detail}
    if errors is not None:
        body["errors"] = errors
    return OrjsonResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Every failure is a JSON ``{"detail": ...}``; bad input is a 4xx, never a 500."""

    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        messages = validation_messages(exc)
        shown = messages[:MAX_LISTED_ERRORS]
        detail = "; ".join(messages[:3]) + (f" (and {len(messages) - 3} more)" if len(messages) > 3 else "")
        return _error(422, detail, shown)

    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    async def rejected(request: Request, exc: EventRejected | InvalidInput) -> Response:
        return _error(422, str(exc))

    async def unavailable(request: Request, exc: StoreUnavailable) -> Response:
        return _error(503, str(exc))

    async def not_ready(request: Request, exc: NotReady) -> Response:
        return _error(503, str(exc))

    async def crashed(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "internal error")

    app.add_exception_handler(RequestValidationError, invalid)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(EventRejected, rejected)  # type: ignore[arg-type]
    app.add_exception_handler(InvalidInput, rejected)  # type: ignore[arg-type]
    app.add_exception_handler(StoreUnavailable, unavailable)  # type: ignore[arg-type]
    app.add_exception_handler(NotReady, not_ready)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, crashed)


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {
        401: "missing or wrong API key",
        409: "there is no previous version",
        413: "the body is over the size limit",
        422: "the request is not valid",
        503: "not ready: no ruleset, or the store is unavailable",
    }
    return {code: {"model": ErrorResponse, "description": described[code]} for code in codes}


# --- authentication ---

bearer = HTTPBearer(auto_error=False, description="the API key given to tailor serve, as a bearer token")


def require_key(api_key: str):
    """A dependency that lets a request through only with ``Authorization: Bearer KEY``."""
    expected = api_key.encode()

    async def check(credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> None:
        given = credentials.credentials.encode() if credentials is not None else b""
        if not hmac.compare_digest(given, expected):
            raise HTTPException(401, "a valid API key is required", headers={"WWW-Authenticate": "Bearer"})

    return check


# --- the app ---


def create_app(
    service: DecisionService,
    *,
    api_key: str | None = None,
    protect_reads: bool = False,
    watch: bool = True,
    max_body: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The API over ``service``, which must already be open; ``watch`` starts hot reload."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        reloader = Reloader(service) if watch else None
        if reloader is not None:
            reloader.start()
        app.state.reloader = reloader
        try:
            yield
        finally:
            if reloader is not None:
                await reloader.stop()
            await service.close()

    app = FastAPI(
        title="tailor",
        summary="Real-time personalization decisions steered by rules.",
        version="1",
        default_response_class=OrjsonResponse,
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(BodyLimit, limit=max_body)
    install_error_handlers(app)
    guard = [Depends(require_key(api_key))] if api_key else []
    read_guard = guard if protect_reads else []
    auth = (401,) if api_key else ()
    read_auth = auth if protect_reads else ()

    @app.post(
        "/v1/decide",
        response_model=DecideResponse,
        dependencies=read_guard,
        responses=_responses(*read_auth, 413, 422, 503),
        tags=["decisions"],
        summary="What each slot shows for one request",
    )
    async def decide(body: DecideRequest) -> Response:
        served, outcomes = await service.decide(body.user_id, body.context, body.slots, body.features, body.at)
        return OrjsonResponse(service.response(served, outcomes))

    @app.post(
        "/v1/explain",
        response_model=ExplainResponse,
        dependencies=read_guard,
        responses=_responses(*read_auth, 413, 422, 503),
        tags=["decisions"],
        summary="A decision and, per slot, why better-ranked rules did not win",
    )
    async def explain(body: DecideRequest) -> Response:
        served, outcomes = await service.decide(body.user_id, body.context, body.slots, body.features, body.at)
        return OrjsonResponse(service.response(served, outcomes, explained=True))

    @app.post(
        "/v1/events",
        response_model=EventsResponse,
        dependencies=guard,
        responses=_responses(*auth, 413, 422, 503),
        tags=["data"],
        summary=f"Record up to {MAX_EVENTS} behavioural events in one round trip",
    )
    async def events(body: EventsRequest) -> Response:
        batch = [Event(e.user_id, e.type, e.key, e.value, e.ts, e.id) for e in body.events]
        result = await service.record(batch)
        return OrjsonResponse(
            {
                "accepted": result.accepted,
                "duplicates": result.duplicates,
                "conflicts": result.conflicts,
                "expired": result.expired,
            }
        )

    @app.put(
        "/v1/users/{user_id:path}",
        response_model=ProfileResponse,
        dependencies=guard,
        responses=_responses(*auth, 413, 422, 503),
        tags=["data"],
        summary="Set (or, with null, delete) profile attributes",
    )
    async def set_profile(
        user_id: Annotated[str, PathParam(min_length=1, max_length=MAX_ID)], body: ProfileRequest
    ) -> Response:
        await service.set_profile(user_id, body.attributes)
        deleted = sum(value is None for value in body.attributes.values())
        return OrjsonResponse({"user_id": user_id, "updated": len(body.attributes) - deleted, "deleted": deleted})

    @app.get(
        "/v1/ruleset",
        response_model=RulesetResponse,
        dependencies=read_guard,
        responses=_responses(*read_auth, 503),
        tags=["ruleset"],
        summary="The version being served, its rules, and the last failed edit",
    )
    async def ruleset() -> Response:
        return OrjsonResponse(_ruleset_body(service))

    @app.post(
        "/v1/ruleset/rollback",
        response_model=RulesetResponse,
        dependencies=guard,
        responses=_responses(*auth, 409, 503),
        tags=["ruleset"],
        summary="Serve the previous good version again",
    )
    async def rollback() -> Response:
        if service.rollback() is None:
            raise HTTPException(409, "there is no previous version to roll back to")
        return OrjsonResponse(_ruleset_body(service))

    @app.get(
        "/v1/stats",
        response_model=StatsResponse,
        dependencies=read_guard,
        responses=_responses(*read_auth),
        tags=["ruleset"],
        summary="Predicate pass rates sampled from decisions (for tailor compile --stats)",
    )
    async def stats() -> Response:
        return OrjsonResponse(service.statistics())

    @app.get("/healthz", response_model=Status, tags=["operations"], summary="The process is up")
    async def healthz() -> Response:
        return OrjsonResponse({"status": "ok"})

    @app.get(
        "/readyz",
        response_model=Status,
        responses=_responses(503),
        tags=["operations"],
        summary="A ruleset is loaded and the store answers",
    )
    async def readyz() -> Response:
        problem = await service.ready()
        if problem is not None:
            return _error(503, problem)
        return OrjsonResponse({"status": "ready"})

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus"}},
        tags=["operations"],
        summary="Prometheus metrics",
    )
    async def metrics() -> Response:  # async: it reads counters only the event loop writes
        data, content_type = service.metrics.exposition()
        return Response(data, media_type=content_type)

    return app


def _ruleset_body(service: DecisionService) -> dict[str, Any]:
    served = service.current
    if served is None:
        raise NotReady("no ruleset is loaded")
    ruleset = served.ruleset
    return {
        "name": ruleset.name,
        "version": ruleset.version,
        "files": list(ruleset.files),
        "loaded_at": served.loaded_at.isoformat(),
        "rules": served.rules,
        "last_error": service.last_error,
        "previous": [
            {"version": old.version, "loaded_at": old.loaded_at.isoformat()} for old in reversed(service.previous)
        ],
    }


# --- running it ---


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """Everything ``tailor serve`` takes; JSON-able, so worker processes can rebuild the app."""

    path: str
    redis: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    deadline_ms: float = DEFAULT_DEADLINE_MS
    retention: float = DEFAULT_RETENTION
    stats: str | None = None
    sample_every: int = DEFAULT_SAMPLE_EVERY
    api_key: str | None = None
    protect_reads: bool = False
    log_level: str = "info"
    access_log: bool = False


OPTIONS_ENV = "TAILOR_SERVE_OPTIONS"


def open_store(redis: str | None, retention: float = DEFAULT_RETENTION) -> FeatureStore:
    """Redis when a URL is given, else the in-process memory store."""
    if redis:
        from .redis_store import RedisStore

        return RedisStore(redis, retention=retention)
    from .memory_store import MemoryStore

    return MemoryStore(retention=retention)


def build_app(options: ServeOptions) -> FastAPI:
    """Load the ruleset (``RulesError`` when it does not compile) and build the app."""
    stats = PredicateStats.load(Path(options.stats)) if options.stats else None
    store = open_store(options.redis, options.retention)
    service = DecisionService(
        options.path,
        store,
        deadline_ms=options.deadline_ms,
        stats=stats,
        sample_every=options.sample_every,
        freeze_heap=True,
    )
    served = service.open()
    where = f"Redis at {_without_password(options.redis)}" if options.redis else "the memory store"
    log.info("serving ruleset %s %s (%d rules) with %s", served.ruleset.name, served.version, len(served.rules), where)
    return create_app(service, api_key=options.api_key, protect_reads=options.protect_reads)


def check(options: ServeOptions) -> None:
    """Raise what starting would raise (``RulesError``, a bad statistics file), without a store."""
    stats = PredicateStats.load(Path(options.stats)) if options.stats else None
    load(options.path, stats=stats)
    Scheme.for_retention(options.retention)


def _without_password(url: str) -> str:
    """The URL as it may appear in a log: no user or password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def app_from_env() -> FastAPI:
    """The app factory each worker process calls when ``--workers`` is above 1."""
    options = ServeOptions(**json.loads(os.environ[OPTIONS_ENV]))
    _configure_logging(options.log_level)
    return build_app(options)


def _configure_logging(level: str) -> None:
    from uvicorn.logging import DefaultFormatter

    logger = logging.getLogger("tailor")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(DefaultFormatter("%(levelprefix)s %(message)s"))  # uvicorn's own look
        logger.addHandler(handler)
    logger.setLevel(level.upper())


def serve(options: ServeOptions) -> None:
    """Run the server until interrupted; raises ``RulesError`` if the ruleset does not compile."""
    import uvicorn

    _configure_logging(options.log_level)
    speed = {
        "loop": "uvloop" if find_spec("uvloop") else "asyncio",
        "http": "httptools" if find_spec("httptools") else "h11",
    }
    common = {
        "host": options.host,
        "port": options.port,
        "log_level": options.log_level,
        "access_log": options.access_log,
        "timeout_graceful_shutdown": 5,
        **speed,
    }
    if options.workers > 1:
        check(options)  # fail fast, with diagnostics, before starting workers
        os.environ[OPTIONS_ENV] = json.dumps(asdict(options))
        uvicorn.run("tailor.runtime.server:app_from_env", factory=True, workers=options.workers, **common)
        return
    uvicorn.run(build_app(options), **common)
