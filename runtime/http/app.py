"""The HTTP API: a FastAPI app over a ``DecisionService``, and its routes.

The decision, event and feedback routes are here, with the operations ones;
the closed loop's reads are ``loop_routes.py``'s, a user's data
``user_routes.py``'s and the console's ``console_routes.py``'s.

Every request body is a typed model with limits (``schemas``); responses are
built as plain dicts by the ``to_dict`` of what they hold and written with
orjson, and the response models describe them in the OpenAPI schema without
re-validating every response.

With an API key, every route but ``OPEN_PATHS`` needs it; ``public_decisions``
opens ``/v1/decide`` alone (explanations, the ruleset and the statistics show
per-user values and the rules: never without the key). File names in answers
are relative to the ruleset's root.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import Response

from ..attribution import Attribution
from ..canary import Canary
from ..decision_log import DecisionLog
from ..drift_history import DEFAULT_DRIFT_INTERVAL, DriftRecorder
from ..erasure import Erasure
from ..events import Event
from ..feedback import DEFAULT_ATTRIBUTION, MAX_FEEDBACK, FeedbackItem, Impressions
from ..fleet import DEFAULT_HEARTBEAT, Heartbeat, read_fleet
from ..model_monitor import ModelMonitor
from ..recent_decisions import RecentDecisions
from ..reload import DEFAULT_RELOAD_TIMEOUT, DEFAULT_SETTLE_MS, Reloader
from ..ruleset_root import RulesetRoot
from ..service import DecisionService
from ..shadow import Shadow
from ..status import RulesetStatus
from ..supplied_features import IgnoredFeatures, SuppliedFeatures
from .console_routes import DEFAULT_CONSOLE, add_console
from .decide_route import DecideShortPath
from .explain_json import explanation_json
from .loop_routes import add_loop_routes
from .middleware import BodyLimit, error_responses, install_error_handlers, require_key
from .responses import OrjsonResponse, error_response
from .schemas import (
    MAX_BODY_BYTES,
    MAX_EVENTS,
    DecideRequest,
    DecideResponse,
    EventsRequest,
    EventsResponse,
    ExplainResponse,
    FeedbackRequest,
    FeedbackResponse,
    RulesetResponse,
    StatsResponse,
    Status,
)
from .user_routes import add_user_routes
from .write_routes import EventsShortPath, FeedbackShortPath

KEPT_FEATURE_READERS = 8  # versions whose supplied-feature keys are remembered: the current and recent ones


def create_app(
    service: DecisionService,
    *,
    api_key: str | None = None,
    public_decisions: bool = False,
    watch: bool = True,
    max_body: int = MAX_BODY_BYTES,
    reload_timeout: float = DEFAULT_RELOAD_TIMEOUT,
    settle_ms: float = DEFAULT_SETTLE_MS,
    decision_log: DecisionLog | None = None,
    attribution: float = DEFAULT_ATTRIBUTION,
    impressions: Impressions = Impressions.FEEDBACK,
    shadow: Shadow | None = None,
    canary: Canary | None = None,
    heartbeat: float = DEFAULT_HEARTBEAT,
    drift_interval: float = DEFAULT_DRIFT_INTERVAL,
    console: bool = DEFAULT_CONSOLE,
) -> FastAPI:
    """The API over ``service``, which must already be open; ``watch`` starts hot reload.

    ``api_key`` (None: no authentication; empty: ``ValueError``) guards every
    route but health, readiness and metrics; ``public_decisions`` leaves
    ``/v1/decide`` open. ``decision_log`` (already listening to ``service``)
    is started with the app and, on a clean stop, written out before the
    store closes. Served decisions are kept for feedback for ``attribution``
    seconds; ``impressions`` says where impressions come from. The process writes its
    heartbeat to the store every ``heartbeat`` seconds (see ``fleet.py``). ``console``
    serves the browser console's page at ``/`` (its endpoints are there either way).
    """
    monitor = ModelMonitor(service)
    service.listen(monitor.served)
    drift = DriftRecorder(monitor, drift_interval)
    attributed = Attribution(
        service.store,
        service.metrics,
        attribution=attribution,
        impressions=impressions,
        consent_attribute=service.consent_attribute,
        monitor=monitor,
    )
    service.listen(attributed.served)
    erasure = Erasure(service, attributed, decision_log)
    # The served traffic the console counts and replays: kept beside the decision log, or for the page
    # alone when it is served without one (bounded, in memory, and forgotten on erasure).
    recent = RecentDecisions() if decision_log is not None or console else None
    if recent is not None:
        service.listen(recent)
        erasure.forgetters.append(recent.forget)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.metrics.gc_pauses.install()
        reloader = Reloader(service, reload_timeout=reload_timeout, settle_ms=settle_ms) if watch else None
        if reloader is not None:
            reloader.start()
        app.state.reloader = reloader
        # Candidates reload like the served version, each through a reloader of its own.
        candidates = [c.candidate for c in (shadow, canary) if c is not None] if watch else []
        candidate_reloaders = [Reloader(c, reload_timeout=reload_timeout, settle_ms=settle_ms) for c in candidates]
        for candidate_reloader in candidate_reloaders:
            candidate_reloader.start()
        if decision_log is not None:
            decision_log.start()
        erasure.start()
        beats = Heartbeat(service, heartbeat)
        beats.start()
        app.state.heartbeat = beats
        drift.start()
        try:
            yield
        finally:
            await drift.stop()
            await beats.stop()
            await erasure.close()
            if reloader is not None:
                await reloader.stop()
            for candidate_reloader in candidate_reloaders:
                await candidate_reloader.stop()
            if decision_log is not None:
                await decision_log.close()
            await attributed.close()
            await monitor.flush()
            await service.close()
            service.metrics.gc_pauses.uninstall()

    app = FastAPI(
        title="tailor",
        summary="Real-time personalization decisions steered by rules.",
        version="1",
        default_response_class=OrjsonResponse,
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.attribution = attributed
    app.state.models = monitor
    app.state.drift = drift
    app.add_middleware(BodyLimit, limit=max_body)
    install_error_handlers(app)
    guard = [Depends(require_key(api_key))] if api_key is not None else []
    auth = (401,) if api_key is not None else ()
    decide_guard, decide_auth = ([], ()) if public_decisions else (guard, auth)
    # Outside the body limit: they answer only what the routes below would answer 200 to (decide_route.py);
    # the decisions' outermost, so a decision passes no other.
    short_paths = (
        (EventsShortPath, lambda body: record(body), api_key),
        (FeedbackShortPath, lambda body: take(body), api_key),
        (DecideShortPath, lambda body: decision(body, explained=False), None if public_decisions else api_key),
    )
    for short_path, decide, key in short_paths:
        app.add_middleware(short_path, decide=decide, limit=max_body, handlers=app.exception_handlers, key=key)
    root = RulesetRoot.of(service.path)
    readers: dict[str, SuppliedFeatures] = {}  # by version

    def supplied(features: dict[str, Any]) -> tuple[Mapping[str, Any], tuple[str, ...]]:
        """The request's features keyed as the version being served reads them.

        ``service.decide`` reads the same version: no await comes between.
        """
        served = service.serving()
        reader = readers.get(served.version)
        if reader is None:
            if len(readers) >= KEPT_FEATURE_READERS:
                del readers[next(iter(readers))]
            reader = readers[served.version] = SuppliedFeatures(served.ruleset.plan.features)
        return reader.apply(features)

    async def decision(body: DecideRequest, explained: bool) -> dict[str, Any]:
        features: Mapping[str, Any] = body.features
        ignored: tuple[str, ...] = ()
        if features:
            features, ignored = supplied(features)
        decided = await service.decide(body.user_id, body.context, body.slots, features, body.at, body.consent)
        decision_id = service.new_decision_id(decided.outcomes.consent)
        answer = service.response(decided.served, decided.outcomes, decision_id, explained=explained)
        if not decided.outcomes.consent:
            answer["consent"] = False
        if not explained:
            service.publish(decided, decision_id, body.user_id, body.context, body.at)
        if ignored:
            answer.update(IgnoredFeatures(ignored).to_dict())
        if explained:
            answer["explain"] = explanation_json(answer["explain"], root)
        return answer

    @app.post(
        "/v1/decide",
        response_model=DecideResponse,
        dependencies=decide_guard,
        responses=error_responses(*decide_auth, 413, 422, 503),
        tags=["decisions"],
        summary="What each slot shows for one request",
    )
    async def decide(body: DecideRequest) -> Response:
        return OrjsonResponse(await decision(body, explained=False))

    @app.post(
        "/v1/explain",
        response_model=ExplainResponse,
        dependencies=guard,
        responses=error_responses(*auth, 413, 422, 503),
        tags=["decisions"],
        summary="A decision and, per slot, why better-ranked rules did not win",
    )
    async def explain(body: DecideRequest) -> Response:
        return OrjsonResponse(await decision(body, explained=True))

    @app.post(
        "/v1/events",
        response_model=EventsResponse,
        dependencies=guard,
        responses=error_responses(*auth, 413, 422, 503),
        tags=["data"],
        summary=f"Record up to {MAX_EVENTS} behavioural events in one round trip",
    )
    async def events(body: EventsRequest) -> Response:
        return OrjsonResponse(await record(body))

    async def record(body: EventsRequest) -> dict[str, Any]:
        batch = [Event(e.user_id, e.type, e.key, e.value, e.ts, e.id) for e in body.events]
        result = await service.record(batch, [e.consent is False for e in body.events])
        return {
            "accepted": result.accepted,
            "duplicates": result.duplicates,
            "conflicts": result.conflicts,
            "expired": result.expired,
            "dropped_no_consent": result.dropped_no_consent,
        }

    @app.post(
        "/v1/feedback",
        response_model=FeedbackResponse,
        dependencies=guard,
        responses=error_responses(*auth, 413, 422, 503),
        tags=["data"],
        summary=f"Impressions, clicks, conversions on served decisions: up to {MAX_FEEDBACK} items",
    )
    async def feedback(body: FeedbackRequest) -> Response:
        return OrjsonResponse(await take(body))

    async def take(body: FeedbackRequest) -> dict[str, Any]:
        items = [
            FeedbackItem(i.decision_id, i.slot, i.type, i.value, i.ts, i.id, i.user_id, i.consent) for i in body.items
        ]
        return (await attributed.receive(items)).to_dict()

    add_loop_routes(app, service, attributed, monitor, drift, guard=guard, auth=auth)
    add_user_routes(app, service, erasure, guard=guard, auth=auth)

    async def status() -> RulesetStatus:
        """What is served, with the fleet as the store's heartbeats say."""
        fleet = await read_fleet(service, heartbeat)
        return RulesetStatus.of(service, root, fleet)

    @app.get(
        "/v1/ruleset",
        response_model=RulesetResponse,
        dependencies=guard,
        responses=error_responses(*auth, 503),
        tags=["ruleset"],
        summary="The version being served, its rules, the last failed edit, and whether the fleet agrees",
    )
    async def ruleset() -> Response:
        return OrjsonResponse((await status()).to_dict())

    @app.post(
        "/v1/ruleset/rollback",
        response_model=RulesetResponse,
        dependencies=guard,
        responses=error_responses(*auth, 409, 503),
        tags=["ruleset"],
        summary="Serve the previous good version again",
    )
    async def rollback() -> Response:
        if service.rollback() is None:
            raise HTTPException(409, "there is no previous version to roll back to")
        return OrjsonResponse((await status()).to_dict())

    @app.get(
        "/v1/shadow",
        dependencies=guard,
        responses=error_responses(*auth, 404),
        tags=["ruleset"],
        summary="The shadow candidate's running diff against what was served (tailor diff --format json's shape)",
    )
    async def shadow_diff() -> Response:
        if shadow is None:
            return error_response(404, "no shadow candidate: start the server with --shadow PATH")
        return OrjsonResponse(shadow.to_dict())

    @app.get(
        "/v1/canary",
        dependencies=guard,
        responses=error_responses(*auth, 404),
        tags=["ruleset"],
        summary="The canary candidate: its share, its decisions against live, and its rollbacks",
    )
    async def canary_status() -> Response:
        if canary is None:
            return error_response(404, "no canary candidate: start the server with --canary PATH")
        return OrjsonResponse(canary.status().to_dict())

    @app.get(
        "/v1/stats",
        response_model=StatsResponse,
        dependencies=guard,
        responses=error_responses(*auth),
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
        responses=error_responses(503),
        tags=["operations"],
        summary="A ruleset is loaded and the store answers",
    )
    async def readyz() -> Response:
        problem = await service.ready()
        if problem is not None:
            return error_response(503, problem)
        return OrjsonResponse({"status": "ready", "reload_check_age_seconds": service.reload_check_age()})

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus"}},
        tags=["operations"],
        summary="Prometheus metrics",
    )
    async def metrics() -> Response:  # async: it reads counters only the event loop writes
        if service.current is not None:
            with contextlib.suppress(Exception):  # metrics always answer: the gauges keep their last values
                await monitor.report()  # the model gauges: read from the store, shared by every process
            fleet = await read_fleet(service, heartbeat)  # None when the store fails: the gauges keep their values
            if fleet is not None:
                service.metrics.fleet_processes.set(len(fleet.processes))
                service.metrics.fleet_agrees.set(int(fleet.agrees))
        data, content_type = service.metrics.exposition()
        return Response(data, media_type=content_type)

    add_console(app, service, attributed, root, recent, guard=guard, auth=auth, page=console)
    return app
