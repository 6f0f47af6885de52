"""The event log training reads: JSON lines of store events, profile updates and impressions.

Every line needs its time (``ts``), so the log can be replayed in order; an
impression carries the request's context and a profile event the user's
attributes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .events import Event
from .train_error import TrainError

IMPRESSION = "impression"
PROFILE = "profile"


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One line of the log: a store event, a profile update, or an impression with its context."""

    event: Event
    ts: float
    context: Mapping[str, Any] = field(default_factory=dict)
    attributes: Mapping[str, Any] | None = None  # for profile events


def read_events(path: Path) -> list[LogEvent]:
    """The log's events, in time order (file order among equal times)."""
    events: list[LogEvent] = []
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    events.append(parse_event(line, f"{path.name}:{number}"))
    except UnicodeDecodeError:
        raise TrainError(f"{path.name} is not UTF-8 text", "the event log is JSON lines in UTF-8") from None
    events.sort(key=lambda e: e.ts)
    return events


def parse_event(line: str, where: str) -> LogEvent:
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise TrainError(f"{where}: not JSON ({exc})", "write one JSON object per line") from None
    if not isinstance(data, dict):
        raise TrainError(f"{where}: not a JSON object", "write one JSON object per line")

    def bad(problem: str) -> TrainError:
        return TrainError(f"{where}: {problem}", "an event is {user_id, type, key?, value?, ts, id?}")

    user_id, type_, ts = data.get("user_id"), data.get("type"), data.get("ts")
    if not isinstance(user_id, str) or not user_id:
        raise bad("the event has no user_id")
    if not isinstance(type_, str) or not type_:
        raise bad("the event has no type")
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise bad("the event has no ts (epoch seconds); training needs every event's time")
    key, value, event_id = data.get("key"), data.get("value"), data.get("id")
    if key is not None and not isinstance(key, str):
        raise bad(f"the event's key is not text: {key!r}")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise bad(f"the event's value is not a number: {value!r}")
    if event_id is not None and not isinstance(event_id, str):
        raise bad(f"the event's id is not text: {event_id!r}")
    context = data.get("context") or {}
    if not isinstance(context, dict):
        raise bad("the event's context is not an object")
    attributes = None
    if type_ == PROFILE:
        attributes = data.get("attributes")
        if not isinstance(attributes, dict):
            raise bad('a profile event needs "attributes": an object of profile attributes')
    event = Event(user_id, type_, key, value, float(ts), event_id)
    return LogEvent(event, float(ts), context, attributes)
