"""The training rows: the event log replayed, with each labelled impression's features as of its moment.

The log is replayed, in time order, into a ``MemoryStore`` (the store the
server decides with), and at every *labelled impression* (an ``impression``
event whose key is one of the target contents) the model's features are
fetched as of that moment: before the impression, and before anything that
happened at the same time or later, is recorded. Training and serving
therefore compute every feature the same way, and no row sees its own future.

The label is 1 when the same user has a ``label`` event (``click``) on the
same key within the label window (30 minutes) after the impression.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from tailor.compiler.model_inputs import ModelInput

from .event_log import IMPRESSION, LogEvent
from .events import DEFAULT_RETENTION, Event
from .feature_rows import FeatureRows
from .memory_store import MemoryStore

LABEL_WINDOW = 1800.0


@dataclass(frozen=True, slots=True)
class Dataset:
    """One row per labelled impression, in time order."""

    features: tuple[str, ...]
    rows: np.ndarray  # float32 [N, F]
    labels: np.ndarray  # int8 [N]
    times: np.ndarray  # float64 [N]: the impressions' times
    users: tuple[str, ...]
    keys: tuple[str, ...]
    censored: int = 0  # impressions left out: the log ends before their label window does


Progress = Callable[[int, int, int], None]  # (events replayed, events in all, rows so far)


def build_dataset(
    events: Sequence[LogEvent],
    features: Sequence[ModelInput],
    label: str,
    targets: Iterable[str],
    label_window: float = LABEL_WINDOW,
    retention: float = DEFAULT_RETENTION,
    progress: Progress | None = None,
) -> Dataset:
    """Replay ``events`` (in time order) and compute each labelled impression's row as of its moment."""
    targets = frozenset(targets)
    clicks: dict[tuple[str, str | None], list[float]] = {}
    for item in events:
        if item.event.type == label:
            clicks.setdefault((item.event.user_id, item.event.key), []).append(item.ts)
    last = events[-1].ts if events else 0.0
    inputs = FeatureRows.of(features)
    refs = inputs.store_refs()
    store = MemoryStore(retention)
    rows: list[list[float]] = []
    labels: list[int] = []
    times: list[float] = []
    users: list[str] = []
    keys: list[str] = []
    censored = 0
    pending: list[Event] = []

    def flush() -> None:
        if pending:
            store.record_now(pending, now=pending[-1].ts)
            pending.clear()

    total = len(events)
    start = 0
    while start < total:
        ts = events[start].ts
        stop = start
        while stop < total and events[stop].ts == ts:
            stop += 1
        group = events[start:stop]
        # First every row at this moment, from what happened strictly before it ...
        for item in group:
            event = item.event
            if event.type != IMPRESSION or event.key not in targets:
                continue
            if ts + label_window > last:
                censored += 1
                continue
            flush()
            fetched = store.fetch_now(event.user_id, refs, at=ts)
            rows.append(inputs.row(fetched, item.context, f", for user {event.user_id} at ts {ts:g}"))
            after = clicks.get((event.user_id, event.key), [])
            index = bisect_right(after, ts)
            labels.append(int(index < len(after) and after[index] <= ts + label_window))
            times.append(ts)
            users.append(event.user_id)
            keys.append(event.key or "")
        # ... then this moment's events, for the rows that come later.
        for item in group:
            if item.attributes is not None:
                flush()
                store.set_profile_now(item.event.user_id, item.attributes)
            else:
                pending.append(item.event)
                if len(pending) >= 500:
                    flush()
        start = stop
        if progress is not None:
            progress(start, total, len(rows))
    flush()
    width = len(features)
    return Dataset(
        features=tuple(f.text for f in features),
        rows=np.asarray(rows, dtype=np.float32).reshape(len(rows), width),
        labels=np.asarray(labels, dtype=np.int8),
        times=np.asarray(times, dtype=np.float64),
        users=tuple(users),
        keys=tuple(keys),
        censored=censored,
    )
