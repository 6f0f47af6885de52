"""Feedback for the optimizer: which predicates held in sampled decisions.

The runtime samples decisions through ``predicate_outcomes`` to learn pass
rates, which ``tailor compile --stats`` feeds back into predicate order.
"""

from __future__ import annotations

from .decide import Decider, Outcomes
from .values import predicate_value


def predicate_outcomes(decider: Decider, outcomes: Outcomes) -> list[tuple[str, bool]]:
    """(predicate text, held) for every predicate this decision could evaluate without new reads.

    The runtime samples decisions through this to learn pass rates; it reads
    only values the decision already had, so it never fetches or runs a model.
    """
    values = outcomes.values
    known = set(outcomes.decision.fetched) | set(values)
    results = []
    for predicate, text, refs in decider.predicate_index:
        if not all(ref in known for ref in refs):
            continue
        verdict = predicate_value(predicate, values)
        if verdict is not None:
            results.append((text, verdict))
    return results
