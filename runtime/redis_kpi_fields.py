"""The KPI counters' field names in Redis: one per measure, slot, rule and content, as JSON.

Keeping served decisions (``redis_served.py``) and counting feedback
(``redis_feedback.py``) add to the same fields, and the KPI reads parse them,
so they are named in one place. Both name the same few again and again (a
batch names each many times), so the names are cached.
"""

from __future__ import annotations

import functools
import json


@functools.lru_cache(maxsize=4096)
def counter_field(measure: str, slot: str, rule: str, content: str) -> str:
    """A KPI counter's field, kept for the few a server meets again and again (a batch names each many times)."""
    return f"{measure}:{json.dumps([slot, rule, content], ensure_ascii=False, separators=(',', ':'))}"


@functools.lru_cache(maxsize=4096)
def counted_fields(measures: tuple[str, ...], slot: str, rule: str, content: str) -> tuple[str, ...]:
    """``counter_field`` of each measure, remembered: a server keeps the same few slots, rules and contents
    over and over, and a keep call often holds one or two decisions."""
    return tuple(counter_field(measure, slot, rule, content) for measure in measures)
