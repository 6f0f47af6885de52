"""Stream records: one event or one feedback item per entry, in the schema of the HTTP API.

A stream entry carries exactly one of two fields: ``event``, whose value is
the JSON of one item of ``POST /v1/events``, or ``feedback``, the JSON of one
item of ``POST /v1/feedback``. Both are checked by the request models of the
HTTP API (``http/schemas.py``), so a record the server would refuse is
refused here too, with the same message; other fields of the entry are
ignored (and kept in its dead letter). A record the store would reject
(a time too far ahead) is refused here, one by one, so one bad record never
holds up the rest of a batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from .events import FUTURE_TOLERANCE, Event
from .feedback import FeedbackItem
from .http.middleware import validation_messages
from .http.schemas import EventIn, FeedbackIn

EVENT_FIELD = "event"
FEEDBACK_FIELD = "feedback"


class BadRecord(ValueError):
    """A record that cannot be stored, and why: it goes to the dead-letter stream."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry read from a source: its id there (also what acknowledges it) and its fields."""

    id: str
    fields: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class EventRecord:
    """An event, and whether its record says its user declined (``consent: false``): then it is dropped."""

    event: Event
    declined: bool = False


Record = EventRecord | FeedbackItem


def read_record(fields: Mapping[str, str], fallback_id: str, now: float) -> Record:
    """The event or feedback item an entry carries, or ``BadRecord`` saying what is wrong.

    An event without an id is given ``fallback_id`` (the entry's own, with its
    stream's name): a redelivered entry then counts once, like a retried event with an id.
    """
    given = [name for name in (EVENT_FIELD, FEEDBACK_FIELD) if name in fields]
    if len(given) != 1:
        found = ", ".join(sorted(fields)) or "none"
        raise BadRecord(f"an entry carries exactly one of the fields event and feedback; its fields: {found}")
    name = given[0]
    model: type[BaseModel] = EventIn if name == EVENT_FIELD else FeedbackIn
    try:
        body = model.model_validate_json(fields[name])
    except ValidationError as exc:
        raise BadRecord(f"{name}: " + "; ".join(validation_messages(exc))) from None
    ts = body.ts  # type: ignore[attr-defined]
    if ts is not None and ts > now + FUTURE_TOLERANCE:
        raise BadRecord(
            f"{name}.ts is from the future: {ts - now:.0f} s after the ingester's clock, "
            f"more than the {FUTURE_TOLERANCE:.0f} s tolerated"
        )
    if isinstance(body, EventIn):
        event = Event(body.user_id, body.type, body.key, body.value, body.ts, body.id or fallback_id)
        return EventRecord(event, body.consent is False)
    assert isinstance(body, FeedbackIn)
    return FeedbackItem(
        body.decision_id, body.slot, body.type, body.value, body.ts, body.id, body.user_id, body.consent
    )
