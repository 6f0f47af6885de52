"""The closed loop's read routes: KPIs, experiments and their results, models' drift and health, join records.

Each reads what the serving process and the store have counted; none writes.
``add_loop_routes`` adds them to the app ``create_app`` builds (``app.py``).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import FastAPI, Query
from fastapi.responses import Response

from ..attribution import Attribution
from ..drift_history import DriftRecorder
from ..experiment_report import ExperimentList, read_report
from ..kpis import KpiQuery
from ..model_monitor import ModelMonitor
from ..service import WRITE_TIMEOUT, DecisionService, NotReady, StoreUnavailable
from .middleware import error_responses
from .responses import OrjsonResponse, error_response
from .schemas import (
    MAX_ID,
    MAX_NAME,
    DriftHistoryResponse,
    ExperimentResponse,
    ExperimentsResponse,
    JoinedRequest,
    JoinedResponse,
    KpisResponse,
    ModelsResponse,
    NameInPath,
)


def add_loop_routes(
    app: FastAPI,
    service: DecisionService,
    attributed: Attribution,
    monitor: ModelMonitor,
    drift: DriftRecorder,
    *,
    guard: list[Any],
    auth: tuple[int, ...],
) -> None:
    """``/v1/kpis``, ``/v1/experiments`` (and one experiment's results), ``/v1/models`` (and a model's drift
    history) and ``/v1/feedback/joined``, behind ``guard``."""

    @app.get(
        "/v1/kpis",
        response_model=KpisResponse,
        dependencies=guard,
        responses=error_responses(*auth, 422, 503),
        tags=["data"],
        summary="Decisions, impressions, clicks, conversions and their rates per version, slot, rule and content",
    )
    async def kpis(
        slot: Annotated[str | None, Query(max_length=MAX_NAME)] = None,
        rule: Annotated[str | None, Query(max_length=MAX_NAME)] = None,
        since: Annotated[str | None, Query(max_length=10, description="first UTC day, YYYY-MM-DD")] = None,
        until: Annotated[str | None, Query(max_length=10, description="last UTC day, YYYY-MM-DD")] = None,
        version: Annotated[str | None, Query(max_length=MAX_ID)] = None,
    ) -> Response:
        try:
            query = KpiQuery(slot, rule, version, since, until)
        except ValueError as exc:
            return error_response(422, str(exc))
        return OrjsonResponse((await attributed.kpis(query)).to_dict())

    def served_experiments() -> ExperimentList:
        served = service.serving()
        return ExperimentList.of(served.ruleset.plan, served.ruleset.name, served.version)

    @app.get(
        "/v1/experiments",
        response_model=ExperimentsResponse,
        dependencies=guard,
        responses=error_responses(*auth, 503),
        tags=["experiments"],
        summary="The served rules' experiments (arms, weights, coverage, seed, current phase) and holdout",
    )
    async def experiments() -> Response:
        return OrjsonResponse(served_experiments().to_dict())

    @app.get(
        "/v1/experiments/{name}",
        response_model=ExperimentResponse,
        dependencies=guard,
        responses=error_responses(*auth, 404, 422, 503),
        tags=["experiments"],
        summary="One experiment's results in its current phase: rates, lifts, SRM, over time, and conclusions",
    )
    async def experiment(
        name: NameInPath,
        phase: Annotated[str | None, Query(max_length=MAX_NAME, description="the current phase when absent")] = None,
    ) -> Response:
        listed = served_experiments()
        found = [info for info in listed.experiments if info.name == name]
        if not found:
            names = ", ".join(info.name for info in listed.experiments) or "none"
            return error_response(404, f"no experiment {name!r} in the served rules (experiments: {names})")
        info = found[0]
        if phase is not None and phase != info.phase:
            return error_response(
                404,
                f"phase {phase!r} of {name} is not the one served ({info.phase}): only the served phase's "
                "weights are known, and results never mix phases",
            )
        await attributed.flush()  # every decision served so far is counted
        await service.exposures.flush()
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                report = await read_report(service.store, info)
        except TimeoutError as exc:
            raise StoreUnavailable("the experiment's counts could not be read (timeout)") from exc
        except Exception as exc:
            raise StoreUnavailable(f"the experiment's counts could not be read ({type(exc).__name__})") from exc
        return OrjsonResponse(report.to_dict())

    @app.get(
        "/v1/models/{name}/drift/history",
        response_model=DriftHistoryResponse,
        dependencies=guard,
        responses=error_responses(*auth, 404, 422, 503),
        tags=["ruleset"],
        summary="A served model's PSI and JS over time: a point every --drift-interval seconds, a day of them kept",
    )
    async def drift_history(name: NameInPath) -> Response:
        served = service.serving()
        model = served.ruleset.models.get(name)
        if model is None:
            declared = ", ".join(sorted(served.ruleset.models)) or "none"
            return error_response(404, f"{name!r} is no model of the served rules (models: {declared})")
        return OrjsonResponse(drift.history(name, model.version).to_dict())

    @app.post(
        "/v1/feedback/joined",
        response_model=JoinedResponse,
        dependencies=guard,
        responses=error_responses(*auth, 413, 422, 503),
        tags=["data"],
        summary="Served decisions' join records: the models' scores and the feedback counted on each",
    )
    async def joined(body: JoinedRequest) -> Response:
        joins = await attributed.joined(body.decision_ids)
        found = [joins[i].to_dict() for i in dict.fromkeys(body.decision_ids) if i in joins]
        return OrjsonResponse({"decisions": found})

    @app.get(
        "/v1/models",
        response_model=ModelsResponse,
        dependencies=guard,
        responses=error_responses(*auth, 503),
        tags=["ruleset"],
        summary="Each served model: drift of its live scores from training (PSI, JS), live AUC and calibration",
    )
    async def models() -> Response:
        try:
            report = await monitor.report()
        except NotReady:
            raise
        except Exception as exc:
            raise StoreUnavailable(f"the model counters could not be read ({type(exc).__name__})") from exc
        return OrjsonResponse(report.to_dict())
