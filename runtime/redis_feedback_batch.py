"""Feedback counted on one Redis in one script call a chunk: the count, the counted items' events and marks.

A counted item leaves two things besides its counters: its behavioural event
(recorded as ``POST /v1/events`` records one) and a mark in its join record
(training's label). Sent as separate calls, a failure between them left an
item counted without its event, so a retry, answered as a duplicate, had to
record and mark every item again. ``TAKE_SCRIPT`` does all three in one
atomic call, running the count's and the events' own scripts (``COUNT_SCRIPT``,
``RECORD_EVENTS``) as functions: an item the call counts has its event and
mark stored with it, and one answered as a duplicate had them stored when it
was counted, so the call stores nothing more for it: a batch is one round
trip after the join read. A chunk the process took before is likely a retry:
it is first sent read-only, without its events (not even built), and answered
from the de-duplication alone when none of it is new. On a Redis Cluster the
user's keys and the feedback shard's are in different slots, so the steps stay
apart there (``FeatureStore.take_feedback``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from .buckets import check_batch, kept_buckets
from .events import Event
from .feedback import Outcome, Tally
from .redis_event_record import EVENTS_PER_CALL, RECORD_EVENTS, RECORD_HEADER
from .redis_feedback import COUNT_SCRIPT, COUNTED_BEFORE, OUTCOMES
from .redis_series import SERIES_FINISH, SERIES_WRITE

if TYPE_CHECKING:
    from .redis_feedback import RedisFeedback

# KEYS: the count's keys (as ``COUNT_SCRIPT``'s), then the events' (as ``RECORD_SCRIPT``'s, numbered from 1
# after the count's). ARGV[1]: how many keys are the count's; ARGV[2], ARGV[3]: ``COUNT_SCRIPT``'s ARGV; ARGV[4]:
# JSON, per item: its join record's key index, its mark's field and time, and 1 when its event is among
# the events (0 when its time is past the events' retention); then ``RECORD_SCRIPT``'s ARGV, the events
# in the items' order. An item counted now ('a') marks its join record, if still kept, the first time only,
# and has its event recorded. The reply is ``COUNT_SCRIPT``'s. With ARGV[1] empty (and no more ARGV than the
# count's), the call only reads: the count's replies when no item is new (nothing to store: each was counted,
# with its event and mark, before), else 0, stored nothing.
TAKE_SCRIPT = (
    SERIES_WRITE
    + SERIES_FINISH
    + COUNTED_BEFORE
    + "local function count_items(KEYS, ARGV)\n"
    + COUNT_SCRIPT
    + "end\nlocal function record_events(KEYS, ARGV)\n"
    + RECORD_EVENTS
    + "end\n"
    + """
if ARGV[1] == '' then
  local replies = {}
  for n, t in ipairs(cjson.decode(ARGV[3])) do
    replies[n] = counted_before(t[1], KEYS[t[2]], t[3])
    if replies[n] == 'a' then
      return 0
    end
  end
  return replies
end
local counted = tonumber(ARGV[1])
local replies = count_items(KEYS, {ARGV[2], ARGV[3]})
local event_keys, events = {}, {}
for k = counted + 1, #KEYS do
  event_keys[#event_keys + 1] = KEYS[k]
end
local at = 5 + RECORD_HEADER
for a = 5, at - 1 do
  events[#events + 1] = ARGV[a]
end
for n, item in ipairs(cjson.decode(ARGV[4])) do
  local now = replies[n] == 'a'
  if now then
    local join = KEYS[item[1]]
    if redis.call('EXISTS', join) == 1 then
      redis.call('HSETNX', join, item[2], item[3])
    end
  end
  if item[4] == 1 then
    local last = at + 9 + tonumber(ARGV[at + 4])
    if now then
      for a = at, last do
        events[#events + 1] = ARGV[a]
      end
    end
    at = last + 1
  end
end
if #events > RECORD_HEADER then
  record_events(event_keys, events)
end
return replies
""".replace("RECORD_HEADER", str(RECORD_HEADER))
)
TAKE_SHA = hashlib.sha1(TAKE_SCRIPT.encode()).hexdigest()
# Items per call: each may record an event, so a call holds Redis about as long as a record call of as many
# events (a millisecond or two); a decision arriving meanwhile waits no longer than beside POST /v1/events.
ITEMS_PER_CALL = EVENTS_PER_CALL
REMEMBERED_CHUNKS = 4096  # digests of the chunks a process took, to tell a likely retry (a few hundred kB)


class FeedbackCalls:
    """``FeatureStore.take_feedback`` on one Redis: a ``TAKE_SCRIPT`` call per ``ITEMS_PER_CALL`` items.

    A chunk this process has taken before is likely a retry: it is first only read (its events not even
    built), and stored in full when something of it is new after all."""

    def __init__(self, feedback: RedisFeedback):
        self.feedback = feedback
        self._taken: dict[int, None] = {}  # the digests of the chunks taken, oldest first

    async def take(self, tallies: Sequence[Tally], events: Sequence[Event], keep: float, now: float) -> list[Outcome]:
        feedback = self.feedback
        store = feedback.store
        times = check_batch(events, now)  # raises before anything is sent
        ttl = str(math.ceil(keep * 1000))
        outcomes: list[Outcome] = []
        for start in range(0, len(tallies), ITEMS_PER_CALL):
            end = start + ITEMS_PER_CALL
            chunk = tallies[start:end]
            replies = None
            taken = hash(tuple((t.decision_id, t.slot, t.type, t.id, t.fingerprint) for t in chunk))
            if taken in self._taken:
                keys, count = feedback._count_args(chunk, ttl)
                replies = await store._script(store._writes(), TAKE_SCRIPT, TAKE_SHA, keys, ["", *count])
            if not isinstance(replies, list):
                keys, args = _take_args(feedback, chunk, events[start:end], times[start:end], ttl, now)
                replies = await store._script(store._writes(), TAKE_SCRIPT, TAKE_SHA, keys, args)
                self._remember(taken)
            outcomes += (OUTCOMES[reply] for reply in replies)
        return outcomes

    def _remember(self, taken: int) -> None:
        self._taken[taken] = None
        if len(self._taken) > REMEMBERED_CHUNKS:
            del self._taken[next(iter(self._taken))]


def _take_args(
    feedback: RedisFeedback,
    tallies: Sequence[Tally],
    events: Sequence[Event],
    times: Sequence[float],
    ttl: str,
    now: float,
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV for ``TAKE_SCRIPT``; see the comment above it."""
    store = feedback.store
    keys, count = feedback._count_args(tallies, ttl)
    index = {key: n for n, key in enumerate(keys, 1)}
    recorded: list[Event] = []
    recorded_times: list[float] = []
    items = []
    kept_at: dict[float, bool] = {}  # the items of a batch share a few times (most the time it came)
    for tally, event, ts in zip(tallies, events, times, strict=True):
        join = feedback.join_key(tally.decision_id)
        kept = kept_at.get(ts)
        if kept is None:
            kept = kept_at[ts] = kept_buckets(ts, now, store.scheme) is not None
        if kept:
            recorded.append(event)
            recorded_times.append(ts)
        mark = [index.setdefault(join, len(index) + 1), f"f:{tally.type}:{tally.slot}", repr(ts)]
        items.append([*mark, int(kept)])
    event_keys, event_args, _ = store._record_args(recorded, recorded_times, now)
    return [*index, *event_keys], [str(len(index)), *count, orjson.dumps(items), *event_args]
