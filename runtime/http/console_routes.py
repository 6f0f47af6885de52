"""The console's page and the endpoints only it needed: lint and try scratch rules, and the rules board.

The page (``/``, its files under ``/console/``) is static and open, so it
loads without the API key; every endpoint here is a public, documented API
route behind the key like any other. Scratch rules are compiled off the event
loop and never served: deciding with them, or replaying logged traffic through
them, publishes nothing, so none of it reaches the decision log.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from tailor.compiler.decide import Decider
from tailor.compiler.predicate_trace import predicate_truths
from tailor.compiler.ruleset_changes import changes
from tailor.dsl.diagnostics import Diagnostic, RulesError, render
from tailor.dsl.formatter import format_text

from ..attribution import Attribution
from ..decision_diff import replay_all
from ..decision_replay import Replayer
from ..kpis import KpiQuery
from ..recent_decisions import RecentDecisions
from ..rule_board import RuleBoard
from ..rule_health import replay_log
from ..ruleset_root import RulesetRoot
from ..scratch_ruleset import Scratch
from ..service import DecisionService, Served
from ..status import shown_diagnostic
from ..supplied_features import IgnoredFeatures, SuppliedFeatures
from .console_schemas import (
    FileResponseBody,
    FormatResponse,
    LintRequest,
    LintResponse,
    RulesResponse,
    ScratchDiffRequest,
    TraceRequest,
    TraceResponse,
)
from .explain_json import explanation_json
from .middleware import error_responses
from .responses import OrjsonResponse, error_response
from .schemas import IdInPath

CONSOLE_FILES = Path(__file__).parent / "console"
DEFAULT_CONSOLE = True  # tailor serve serves the page unless --no-console
KEPT_SCRATCH = 4  # scratch versions kept compiled: typing in the playground asks for the same one again


def add_console(
    app: FastAPI,
    service: DecisionService,
    attributed: Attribution,
    root: RulesetRoot,
    recent: RecentDecisions | None,
    *,
    guard: list[Any],
    auth: tuple[int, ...],
    page: bool = True,
) -> None:
    """The console's endpoints, and with ``page`` the page itself at ``/``."""
    path = Path(service.path)
    compiled: OrderedDict[tuple[str, str], Served] = OrderedDict()
    replays: dict[str, Any] = {}  # the last replay of the recent decisions, and what it replayed

    def shown(diagnostics: list[Diagnostic]) -> tuple[list[dict[str, Any]], list[str]]:
        """The diagnostics as JSON and as ``tailor lint`` renders them, their files relative to the root."""
        answers, texts = [], []
        for diagnostic in diagnostics:
            relative = shown_diagnostic(Diagnostic.from_dict(diagnostic.to_dict()), root)
            answers.append(relative.to_dict())
            texts.append(relative.file + root.text(render(diagnostic)[len(diagnostic.file) :]))
        return answers, texts

    def scratch_lint(scratch: Scratch) -> tuple[list[dict[str, Any]], list[str]]:
        return shown(scratch.lint(path, model_limits=service.model_limits))

    async def scratch_version(scratch: Scratch) -> Served:
        """The scratch rules compiled (``RulesError`` when they do not compile), the last few kept."""
        key = (scratch.file, scratch.text)
        served = compiled.get(key)
        if served is None:
            ruleset = await asyncio.to_thread(scratch.ruleset, path, model_limits=service.model_limits)
            served = compiled[key] = Served.of(ruleset)
            while len(compiled) > KEPT_SCRATCH:
                compiled.popitem(last=False)
        compiled.move_to_end(key)
        return served

    def not_compiling(exc: RulesError) -> Response:
        return error_response(422, "the scratch rules do not compile", shown(list(exc.diagnostics))[1])

    @app.post(
        "/v1/lint",
        response_model=LintResponse,
        dependencies=guard,
        responses=error_responses(*auth, 413, 422),
        tags=["ruleset"],
        summary="Lint rules text as part of the served ruleset, without serving it (tailor lint --format json)",
    )
    async def lint(body: LintRequest) -> Response:
        scratch = Scratch(body.text, body.file)
        try:
            answers, texts = await asyncio.to_thread(scratch_lint, scratch)
        except ValueError as exc:
            return error_response(422, f"file: {exc}")
        return OrjsonResponse({"diagnostics": answers, "text": "\n\n".join(texts)})

    @app.post(
        "/v1/fmt",
        response_model=FormatResponse,
        dependencies=guard,
        responses=error_responses(*auth, 413, 422),
        tags=["ruleset"],
        summary="Rules text as tailor fmt writes it (422 with the diagnostics when it does not parse)",
    )
    async def fmt(body: LintRequest) -> Response:
        try:
            formatted = await asyncio.to_thread(format_text, body.text, str(Path(root.path) / body.file))
        except RulesError as exc:
            return error_response(422, "the text does not parse", shown(list(exc.diagnostics))[1])
        return OrjsonResponse({"text": formatted})

    @app.get(
        "/v1/files/{name:path}",
        response_model=FileResponseBody,
        dependencies=guard,
        responses=error_responses(*auth, 404, 422, 503),
        tags=["ruleset"],
        summary="A file of the served ruleset as it is on disk now (a failed edit included), by its listed name",
    )
    async def file(name: IdInPath) -> Response:
        served = service.serving()
        listed = {root.name(f): f for f in served.ruleset.files}
        if name not in listed:
            return error_response(404, f"{name!r} is no file of the served ruleset (files: {', '.join(listed)})")
        try:
            text = await asyncio.to_thread(Path(listed[name]).read_text, encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return error_response(404, f"{name}: cannot be read ({type(exc).__name__})")
        return OrjsonResponse({"file": name, "text": text})

    @app.get(
        "/v1/rules",
        response_model=RulesResponse,
        dependencies=guard,
        responses=error_responses(*auth, 503),
        tags=["ruleset"],
        summary="Every served rule: its text, recent candidates and wins, impressions, clicks, CTR, and findings",
    )
    async def rules() -> Response:
        served = service.serving()
        kpis = await attributed.kpis(KpiQuery())
        records = recent.records() if recent is not None else []
        key = (served.version, len(records), records[-1].decision_id if records else "")
        if replays.get("key") != key:  # replaying is the costly part: again only once new decisions came
            replays["replay"] = await asyncio.to_thread(replay_log, served.ruleset, records)
            replays["key"] = key
        return OrjsonResponse(RuleBoard.of(served.ruleset, replays["replay"], kpis, root).to_dict())

    @app.post(
        "/v1/trace",
        response_model=TraceResponse,
        dependencies=guard,
        responses=error_responses(*auth, 413, 422, 503),
        tags=["decisions"],
        summary="/v1/explain with every predicate's value and truth; with text, decided by those scratch rules",
    )
    async def trace(body: TraceRequest) -> Response:
        asked = body.request
        if body.text is None:
            served = service.serving()
        else:
            try:
                served = await scratch_version(Scratch(body.text, body.file))
            except ValueError as exc:
                return error_response(422, f"file: {exc}")
            except RulesError as exc:
                return not_compiling(exc)
        features, ignored = SuppliedFeatures(served.ruleset.plan.features).apply(asked.features)
        if body.text is None:
            decided = await service.decide(asked.user_id, asked.context, asked.slots, features, asked.at, asked.consent)
        else:
            decided = await service.decide_with(
                served, asked.user_id, asked.context, asked.slots, features, asked.consent
            )
        served = decided.served
        answer = service.response(served, decided.outcomes, service.new_decision_id(), explained=True)
        if ignored:
            answer.update(IgnoredFeatures(ignored).to_dict())
        answer["explain"] = explanation_json(answer["explain"], root)
        answer["predicates"] = [p.to_dict() for p in predicate_truths(served.decider, decided.outcomes)]
        return OrjsonResponse(answer)

    @app.post(
        "/v1/scratch/diff",
        dependencies=guard,
        responses=error_responses(*auth, 404, 413, 422, 503),
        tags=["ruleset"],
        summary="Recent logged decisions replayed through the served and the scratch rules (tailor diff's shape)",
    )
    async def scratch_diff(body: ScratchDiffRequest) -> Response:
        if recent is None:
            return error_response(
                404,
                "no recent traffic is kept without the console page or a decision log: "
                "start the server with --decision-log DIR (or --redis)",
            )
        old = service.serving()
        try:
            new = await scratch_version(Scratch(body.text, body.file))
        except ValueError as exc:
            return error_response(422, f"file: {exc}")
        except RulesError as exc:
            return not_compiling(exc)
        records = recent.records()[-body.limit :] if body.limit else []
        before = Replayer(old.decider)
        logged_models = {name: model.version for name, model in old.ruleset.models.items()}
        after = Replayer(Decider(new.ruleset), logged_models) if new.version != old.version else before
        declared = changes(old.ruleset, new.ruleset)
        diff = await asyncio.to_thread(replay_all, records, before, after, None, declared)
        return OrjsonResponse(diff.to_dict())

    if page:
        index = CONSOLE_FILES / "index.html"

        @app.get("/", include_in_schema=False)
        async def console() -> Response:
            return FileResponse(index, headers={"cache-control": "no-cache"})

        app.mount("/console", StaticFiles(directory=CONSOLE_FILES), name="console")
