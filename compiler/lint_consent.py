"""Lint's view of consent: per slot, what a user who declined personalization will see.

Rules that read personal data are skipped for such users (``consent.py``), so
a slot whose rules all personalize shows them its default, or nothing. The
notes say so per slot, for marketers to give those users a good default.
"""

from __future__ import annotations

from tailor.dsl.diagnostics import Diagnostic, note
from tailor.dsl.source import Span

from .consent import ConsentPlan
from .plan import DecisionPlan

NAMED = 3  # rules named in a note; the rest are counted


def lint_consent(plan: DecisionPlan) -> list[Diagnostic]:
    """One note per slot that has a rule needing consent: what a user without consent sees there."""
    consent = ConsentPlan.of(plan)
    if not consent.rules:
        return []
    program = plan.program
    spans = {rule.name: rule.decl.name.span if rule.decl.name else rule.decl.span for rule in program.rules}
    found = []
    for slot, slot_plan in plan.slots.items():
        ranked = list(dict.fromkeys(plan.conjunctions[bit].rule.name for bit in _bits(slot_plan.mask)))
        needing = [name for name in ranked if name in consent.rules]
        if not needing:
            continue
        left = [name for name in ranked if name not in consent.rules]
        default = f"'{slot_plan.default}' (its default)" if slot_plan.default else "nothing (it has no default)"
        choose = "chooses" if len(left) == 1 else "choose"
        sees = f"what {_names(left, 'rule')} {choose}, else {default}" if left else default
        skipped = _names(needing, "rule")
        message = f"without consent, slot '{slot}' shows {sees}; {skipped} need{'s' if len(needing) == 1 else ''}"
        message += " consent and " + ("is" if len(needing) == 1 else "are") + " skipped"
        decl = program.defaults.get(slot)
        span: Span | None = decl.span if decl is not None else spans.get(ranked[0])
        if left:
            hint = ""
        elif slot_plan.default:
            hint = f"users who declined always see '{slot_plan.default}' here: make it a good default"
        else:
            hint = "give the slot a default, or a rule on context or public attributes, for users who declined"
        found.append(note(message, span, code="without-consent", hint=hint))
    return found


def _bits(mask: int) -> list[int]:
    bits = []
    while mask:
        lowest = mask & -mask
        bits.append(lowest.bit_length() - 1)
        mask ^= lowest
    return bits


def _names(names: list[str], noun: str) -> str:
    shown = ", ".join(f"'{name}'" for name in names[:NAMED])
    more = f" and {len(names) - NAMED} more" if len(names) > NAMED else ""
    return f"{noun}{'s' if len(names) > 1 else ''} {shown}{more}"
