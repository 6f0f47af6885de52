"""The bodies of the console's endpoints: requests with their limits, and responses derived from their dataclasses.

As in ``schemas``: requests are validated before any code runs; responses are
written by the ``to_dict`` of what they hold, and described here.
"""

from __future__ import annotations

from dataclasses import fields

from pydantic import BaseModel, ConfigDict, Field, create_model

from tailor.compiler.predicate_trace import PredicateTruth
from tailor.dsl.diagnostics import Diagnostic

from ..recent_decisions import DEFAULT_RECENT
from ..rule_board import RuleBoard, RuleRow
from ..rule_health import Finding
from ..scratch_ruleset import MAX_SCRATCH_TEXT, SCRATCH_FILE
from .schemas import MAX_ID, DecideRequest, ExplainResponse, _Body, model_of, wire_fields

MAX_DIFF = DEFAULT_RECENT  # logged decisions a diff replays at most: all those kept

ScratchText = Field(max_length=MAX_SCRATCH_TEXT, description="rules text, as a .rules file holds it")
ScratchFile = Field(
    default=SCRATCH_FILE,
    min_length=1,
    max_length=MAX_ID,
    description="the ruleset's file the text stands for, relative to its root (a new file when no such file)",
)


class LintRequest(_Body):
    text: str = ScratchText
    file: str = ScratchFile


class TraceRequest(_Body):
    request: DecideRequest = Field(description="what /v1/explain takes")
    text: str | None = Field(
        default=None, max_length=MAX_SCRATCH_TEXT, description="scratch rules to decide with; the served ones if absent"
    )
    file: str = ScratchFile


class ScratchDiffRequest(_Body):
    text: str = ScratchText
    file: str = ScratchFile
    limit: int = Field(default=MAX_DIFF, ge=0, le=MAX_DIFF, description="the newest logged decisions to replay")


class LintResponse(BaseModel):
    diagnostics: list[model_of(Diagnostic)] = Field(  # type: ignore[valid-type]
        description="exactly what tailor lint --format json prints"
    )
    text: str = Field(description="the same as tailor lint prints them: file:line:col, the line and a caret")


class FormatResponse(BaseModel):
    text: str = Field(description="the formatted text")


class FileResponseBody(BaseModel):
    file: str = Field(description="relative to the ruleset's root")
    text: str


# A finding writes its figures beside its other keys (as tailor report --format json does): extra keys allowed.
RuleFindingModel = create_model(
    "RuleFinding",
    __config__=ConfigDict(extra="allow"),
    __doc__="What tailor report finds wrong with a rule; the figures behind it are further keys.",
    **wire_fields(Finding, *(f.name for f in fields(Finding) if f.name != "figures")),
)
RuleRowModel = create_model(
    "RuleRow",
    findings=(list[RuleFindingModel], Field(description="what tailor report finds wrong with it")),  # type: ignore[valid-type]
    **wire_fields(RuleRow, *(f.name for f in fields(RuleRow) if f.name != "findings")),
)
RulesResponse = create_model(
    "RulesResponse",
    rules=(list[RuleRowModel], ...),  # type: ignore[valid-type]
    **wire_fields(RuleBoard, "name", "version", "replayed"),
)
TraceResponse = create_model(
    "TraceResponse",
    __base__=ExplainResponse,
    predicates=(
        list[model_of(PredicateTruth)],  # type: ignore[misc]
        Field(description="every predicate of the rules asked, with its value and truth, for drawing on the rules"),
    ),
)
