"""The bodies of the HTTP API: request models with their limits, and the response models.

Requests are pydantic models: bad input is a 4xx with a readable message
before any engine code runs. Responses are written by the ``to_dict`` of the
dataclasses that hold them (``Decision``, ``Explanation``, ``RulesetStatus``…);
their models here are derived from those dataclasses by ``model_of``, so the
OpenAPI schema describes what is sent and cannot drift from it. Responses are
not validated against these models: they only describe them.
"""

from __future__ import annotations

import dataclasses
import math
from enum import Enum
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from fastapi import Path as PathParam
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    StrictBool,
    StringConstraints,
    WithJsonSchema,
    create_model,
)

from tailor.compiler.decide import Decision
from tailor.compiler.explain import Explanation

from ..drift_history import DriftHistory
from ..erasure import UserErasure, UserExport
from ..experiment_report import ExperimentList, ExperimentReport
from ..feedback import FEEDBACK_TYPE, MAX_FEEDBACK, FeedbackResult, Join
from ..kpis import KpiReport
from ..model_report import ModelsReport
from ..status import RulesetStatus
from ..supplied_features import IgnoredFeatures
from .explain_json import NON_FINITE

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
# The same bounds on a path segment: a user id or file name, and an experiment's or model's name.
IdInPath = Annotated[str, PathParam(min_length=1, max_length=MAX_ID)]
NameInPath = Annotated[str, PathParam(min_length=1, max_length=MAX_NAME)]
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
    consent: StrictBool | None = Field(
        default=None,
        description="false: the user declined personalization; rules reading personal data are skipped,"
        " and nothing about the decision is stored",
    )


class EventIn(_Body):
    user_id: Id
    type: Name
    key: Annotated[str, Strict(), StringConstraints(max_length=MAX_ID)] | None = None
    value: Finite | None = Field(default=None, description="what total() sums; 1 when absent")
    ts: Epoch | None = Field(default=None, description="when it happened; the store's clock when absent")
    id: Id | None = Field(default=None, description="for de-duplication of retried batches (24 h)")
    consent: StrictBool | None = Field(default=None, description="false: the user declined; dropped, not stored")


class EventsRequest(_Body):
    events: list[EventIn] = Field(max_length=MAX_EVENTS)


class FeedbackIn(_Body):
    decision_id: Id = Field(description="the decision_id /v1/decide answered")
    slot: Name
    type: Annotated[str, Strict(), StringConstraints(min_length=1, max_length=MAX_NAME, pattern=FEEDBACK_TYPE)] = Field(
        description="impression, click, conversion, or any custom lower-case word (dwell, add_to_cart)"
    )
    value: Finite | None = Field(default=None, description="a conversion's amount, seconds on page for dwell")
    ts: Epoch | None = Field(default=None, description="when it happened; the server's clock when absent")
    id: Id | None = Field(default=None, description="makes a retry idempotent; items with different ids count apart")
    user_id: Id | None = Field(default=None, description="when given, must be the decision's user")
    consent: StrictBool | None = Field(default=None, description="false: the user declined; dropped, not stored")


class FeedbackRequest(_Body):
    items: list[FeedbackIn] = Field(max_length=MAX_FEEDBACK)


class JoinedRequest(_Body):
    decision_ids: list[Id] = Field(max_length=MAX_FEEDBACK, description="the decisions whose join records to read")


class ProfileRequest(_Body):
    attributes: dict[Name, Attribute] = Field(
        max_length=MAX_ATTRIBUTES, description="user.NAME values to set; null deletes the attribute"
    )


# --- response models derived from the dataclasses that write them ---

_MODELS: dict[tuple[type, str], type[BaseModel]] = {}


def model_of(shape: type, name: str | None = None) -> type[BaseModel]:
    """The pydantic model of what ``shape.to_dict()`` writes, named ``name`` (the class's name by default).

    ``shape`` is a dataclass (or a named tuple) whose ``to_dict`` writes its
    fields under their names: those that take part in equality, since
    ``from_dict(to_dict())`` gives back an equal value. A field's metadata
    may hold ``doc`` (its description) and ``optional`` (``to_dict`` leaves
    the key out when it is unset); every other key is always written.
    """
    key = (shape, name or shape.__name__)
    model = _MODELS.get(key)
    if model is None:
        doc = (shape.__doc__ or "").strip().split("\n\n")[0] or None
        model = _MODELS[key] = create_model(key[1], __doc__=doc, **wire_fields(shape))
    return model


def wire_fields(shape: type, *names: str, docs: dict[str, str] | None = None) -> dict[str, Any]:
    """``create_model`` definitions of ``shape``'s fields (only ``names`` when given), typed as they are written."""
    hints = get_type_hints(shape)
    docs = docs or {}
    defined = {}
    for name, default, metadata in _fields(shape):
        if names and name not in names:
            continue
        described = docs.get(name, metadata.get("doc"))
        if metadata.get("optional"):
            info = Field(default=_written(default), description=described)
        else:
            info = Field(description=described)
        defined[name] = (_wire_type(hints[name]), info)
    return defined


def _fields(shape: type) -> list[tuple[str, Any, dict[str, Any]]]:
    """(name, default, metadata) of each field that is part of the value."""
    if dataclasses.is_dataclass(shape):
        return [
            (f.name, None if f.default is dataclasses.MISSING else f.default, dict(f.metadata))
            for f in dataclasses.fields(shape)
            if f.compare
        ]
    return [(name, shape._field_defaults.get(name), {}) for name in shape._fields]  # a named tuple


# JSON has no infinity or NaN: a number that is not finite is sent as its name (see explain_json).
NonFinite = Annotated[Literal[NON_FINITE], WithJsonSchema({"type": "string", "enum": list(NON_FINITE)})]


def _wire_type(hint: Any) -> Any:
    """The type of a value as JSON holds it: shapes are their models, tuples lists, enums their values,
    floats numbers or the name of one that is not finite."""
    if hint is float:
        return float | NonFinite
    if isinstance(hint, type) and hasattr(hint, "to_dict"):
        model = model_of(hint)
        return model | None if NoneType in get_args(get_type_hints(hint.to_dict)["return"]) else model
    if isinstance(hint, type) and issubclass(hint, Enum):
        return Literal[tuple(member.value for member in hint)]
    origin, args = get_origin(hint), get_args(hint)
    if origin in (tuple, list):
        return list[_wire_type(args[0])]  # type: ignore[misc]
    if origin is dict:
        return dict[_wire_type(args[0]), _wire_type(args[1])]  # type: ignore[misc]
    if origin in (Union, UnionType):
        return Union[tuple(_wire_type(arg) for arg in args)]  # noqa: UP007
    return hint


def _written(default: Any) -> Any:
    """A default as ``to_dict`` would write it, for the schema."""
    if isinstance(default, tuple):
        return list(default)
    return default.value if isinstance(default, Enum) else default


class RulesetRef(BaseModel):
    name: str
    version: str


DecideResponse = create_model(
    "DecideResponse",
    decision_id=(str, ...),
    ruleset=(RulesetRef, ...),
    **wire_fields(
        Decision,
        "slots",
        "degraded",
        docs={
            "slots": "null: nothing to show in that slot",
            "degraded": "the store could not be read in time: rules needing it did not fire",
        },
    ),
    **wire_fields(IgnoredFeatures),
    consent=(
        bool,
        Field(
            default=True,
            description="present, and false, only when the user declined: no personal data was read, nothing stored",
        ),
    ),
)
ExplainResponse = create_model("ExplainResponse", __base__=DecideResponse, explain=(model_of(Explanation), ...))
RulesetResponse = model_of(RulesetStatus, "RulesetResponse")
FeedbackResponse = model_of(FeedbackResult, "FeedbackResponse")
KpisResponse = model_of(KpiReport, "KpisResponse")
UserErasureResponse = model_of(UserErasure, "UserErasureResponse")
UserExportResponse = model_of(UserExport, "UserExportResponse")
ExperimentsResponse = model_of(ExperimentList, "ExperimentsResponse")
ExperimentResponse = model_of(ExperimentReport, "ExperimentResponse")
ModelsResponse = model_of(ModelsReport, "ModelsResponse")
DriftHistoryResponse = model_of(DriftHistory, "DriftHistoryResponse")


class JoinedResponse(BaseModel):
    decisions: list[model_of(Join, "JoinRecord")] = Field(  # type: ignore[valid-type]
        description="the join records still kept (decisions unknown or past the attribution window are absent)"
    )


# --- response models of the HTTP layer's own answers ---


class EventsResponse(BaseModel):
    accepted: int
    duplicates: int = Field(description="ids already seen in the last 24 h")
    conflicts: int = Field(description="ids already seen in the last 24 h with a different payload: not stored again")
    expired: int = Field(description="older than the retention horizon: accepted and ignored")
    dropped_no_consent: int = Field(default=0, description="events of users without consent: counted, not stored")


class ProfileResponse(BaseModel):
    user_id: str
    updated: int
    deleted: int


class PredicateCount(BaseModel):
    evaluated: int
    held: int


class StatsResponse(BaseModel):
    predicates: dict[str, PredicateCount]


class Status(BaseModel):
    status: str
    reload_check_age_seconds: float | None = Field(
        default=None,
        description="seconds since hot reload last confirmed the files are in step (readiness only); growing: stuck",
    )


class ErrorResponse(BaseModel):
    detail: str
    errors: list[str] | None = None
