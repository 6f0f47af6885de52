"""Which experiments a decision exposed its user to: when the arm could have changed what was served.

A decision exposes its user to an experiment E (in the arm they were drawn
into) when, in a slot the request asked for, it evaluated a rule that reads
E. Precisely: some conjunction of a rule reading E

1. is ranked at or above what the slot served (the walk looks at
   candidates best-first and stops at the winner; rules below it are never
   evaluated, whatever the arm), and
2. survives stage 0 under at least one of E's arms: its request-only
   conditions (context and the other experiments' arms) hold, so only the
   arm could have ruled it out.

Both conditions are the same for every arm of E (the winner ranked above
every rule reading E does not depend on E, and condition 2 tries them all),
so whether a user counts as exposed never depends on the arm they drew:
exposed users compare like with like. Store features are not considered: a
rule ruled out by its arm fetches nothing, so they are not known alike in
every arm. A pinned arm is not an assignment, and a held-out user has none.

This runs off the response path, when the decision's record is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .features import FeatureKind
from .plan import DecisionPlan

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .decide import Decider, Outcomes


class ExposureIndex:
    """Per ruleset: the bits that read each experiment, each slot's bits, and each rule's last bit."""

    __slots__ = ("last_bit", "slot_masks", "uses")

    def __init__(self, plan: DecisionPlan):
        read = {table.ref.name: table.uses for table in plan.tables if table.ref.kind is FeatureKind.EXPERIMENT}
        self.uses = {name: read.get(name, 0) for name in plan.experiments}
        self.slot_masks = {name: slot.mask for name, slot in plan.slots.items()}
        self.last_bit: dict[str, int] = {}
        for conjunction in plan.conjunctions:
            self.last_bit[conjunction.rule.name] = conjunction.bit


def exposed(decider: Decider, context: Mapping[str, Any], outcomes: Outcomes) -> dict[str, tuple[str, ...]]:
    """The experiments whose drawn arm this decision exposed its user to (see the module's text), each with
    the slots where it did: a slot's feedback counts for the arm only where the arm could have changed it."""
    assignment = outcomes.assignment
    drawn = assignment.drawn()
    if not drawn or assignment.holdout:
        return {}
    index = decider.exposure_index
    looked_at: dict[str, int] = {}  # per requested slot, the candidates the walk reached: down to its winner
    for slot, answer in outcomes.decision.slots.items():
        mask = index.slot_masks.get(slot, 0)
        if answer.rule is not None:
            mask &= (1 << (index.last_bit[answer.rule] + 1)) - 1
        looked_at[slot] = mask
    everywhere = 0
    for mask in looked_at.values():
        everywhere |= mask
    found: dict[str, tuple[str, ...]] = {}
    experiments = decider.ruleset.plan.experiments
    for name, _arm in drawn:
        reading = index.uses.get(name, 0) & everywhere
        if not reading:
            continue
        alive_in_some_arm = 0
        for arm in experiments[name].arms:
            arms = {**assignment.arms, name: arm}
            alive, _needed = decider.begin(context, None, assignment._replace(arms=arms))
            alive_in_some_arm |= alive & reading
        if alive_in_some_arm:
            found[name] = tuple(slot for slot, mask in looked_at.items() if mask & alive_in_some_arm)
    return found
