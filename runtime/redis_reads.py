"""How a fetch reads each behavioural feature from the user hash, worked out once per feature.

A decision reads a few dozen counters, and the names of their fields, their
resolutions and their spans never change while the ruleset is served: only
the buckets do, with the time of the decision. Building the field names and
choosing the resolution anew for every feature of every decision was a
large part of what a decision cost the server, so ``FetchReads`` keeps them
by feature and a fetch fills in only the buckets, once per distinct window.
"""

from __future__ import annotations

from collections.abc import Callable

from tailor.compiler.features import FeatureKind, FeatureRef

from .buckets import Resolution, Scheme
from .redis_series import latest_field, series_field

MAX_KEPT = 100_000  # features kept; past it the memo starts again (rulesets never come near it)

# (what, field, resolution, span) for a count or total; ("l", field) for since(); None for anything else.
Read = tuple[str, str, Resolution, float] | tuple[str, str] | None


class FetchReads:
    """Each feature's read, kept by the feature's text (checked against the feature itself).

    ``series_name`` names a series as the store does (``RedisStore.series_name``).
    """

    def __init__(self, scheme: Scheme, series_name: Callable[[str, str], str]):
        self.scheme = scheme
        self.series_name = series_name
        self._reads: dict[str, tuple[FeatureRef, Read]] = {}

    def read(self, ref: FeatureRef) -> Read:
        kept = self._reads.get(ref.text)
        if kept is not None and (kept[0] is ref or kept[0] == ref):
            return kept[1]
        if len(self._reads) >= MAX_KEPT:
            self._reads.clear()
        read = self._plan(ref)
        self._reads[ref.text] = (ref, read)
        return read

    def _plan(self, ref: FeatureRef) -> Read:
        if ref.kind in (FeatureKind.COUNT, FeatureKind.TOTAL):
            scheme = self.scheme
            span = min(max(ref.window, 0.0), scheme.retention)  # as Scheme.window chooses
            resolution = next((r for r in scheme.resolutions if span <= r.keep), scheme.day)
            what = "c" if ref.kind is FeatureKind.COUNT else "t"
            return (what, series_field(self.series_name(ref.event, ref.key), resolution), resolution, span)
        if ref.kind is FeatureKind.SINCE:
            return ("l", latest_field(self.series_name(ref.event, ref.key)))
        return None
