"""The Kafka adapter's mapping from a message to a stream record, without a broker.

No Kafka broker runs in these tests (see docs/ingest.md): what is checked
here is the part of the adapter that is not the client library's, that a
message says the same as a Redis Stream entry.
"""

from __future__ import annotations

import json

import pytest

from tailor.runtime.events import Event
from tailor.runtime.feedback import FeedbackItem
from tailor.runtime.kafka_source import message_entry
from tailor.runtime.stream_records import BadRecord, EventRecord, read_record

NOW = 1_700_000_000.0


def test_an_event_message_is_the_event_a_stream_entry_carries():
    body = {"user_id": "u1", "type": "view", "key": "Electronics", "ts": NOW - 5}
    entry = message_entry(3, 41, json.dumps(body).encode(), [("kind", b"event"), ("trace", b"t-1")])
    assert entry.id == "3-41"
    assert entry.fields == {"event": json.dumps(body), "trace": "t-1"}
    record = read_record(entry.fields, f"site/{entry.id}", NOW)
    assert record == EventRecord(Event("u1", "view", "Electronics", None, NOW - 5, "site/3-41"))


def test_a_feedback_message_is_a_feedback_item():
    body = {"decision_id": "d1", "slot": "hero", "type": "click", "id": "f1"}
    entry = message_entry(0, 7, json.dumps(body).encode(), [("kind", b"feedback")])
    assert read_record(entry.fields, "site/0-7", NOW) == FeedbackItem("d1", "hero", "click", id="f1")


def test_a_message_without_its_kind_is_refused_with_the_reason():
    entry = message_entry(0, 8, b'{"user_id": "u1", "type": "view"}', None)
    with pytest.raises(BadRecord, match="exactly one of the fields event and feedback; its fields: none"):
        read_record(entry.fields, "site/0-8", NOW)
