"""The in-process engine: decisions from a compiled ruleset and supplied values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tailor.compiler.evaluate import Decider, Decision, Explanation, explain
from tailor.compiler.ruleset import Ruleset


class Engine:
    """Decides what each slot shows for one request.

    ``features`` maps canonical feature text (``views("Electronics", 24h)``,
    ``user.tier``, ``p_click``) to values; durations are seconds. Anything not
    supplied is unknown, except counters and totals, which are 0.
    """

    def __init__(self, ruleset: Ruleset):
        self.ruleset = ruleset
        self._decider = Decider(ruleset)

    def decide(
        self,
        user_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        slots: Iterable[str] | None = None,
        features: Mapping[str, Any] | None = None,
        at: float | None = None,
    ) -> Decision:
        return self._decider.decide(context, features, slots).decision

    def explain(
        self,
        user_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        slots: Iterable[str] | None = None,
        features: Mapping[str, Any] | None = None,
        at: float | None = None,
    ) -> Explanation:
        return explain(self._decider, self._decider.decide(context, features, slots))
