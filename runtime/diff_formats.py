"""A ``DecisionDiff`` written out: text for a terminal, markdown for a pull-request comment, JSON for programs.

One emitter per format, each a function of the diff and the names the two
sides were given on the command line.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from .decision_diff import DecisionDiff, RuleShift, SlotDiff, Transition
from .decision_replay import SlotAnswer

SHOWN = 10  # transitions shown in text and markdown, the most frequent first


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "0.0%"


def _answer(answer: SlotAnswer, code: str = "") -> str:
    content, rule = answer
    if content is None:
        return "nothing"
    return f"{code}{content}{code} ({rule})"


def _top(diff: DecisionDiff) -> list[Transition]:
    every = [t for slot in diff.slots for t in slot.transitions]
    return sorted(every, key=lambda t: (-t.count, t.slot))[:SHOWN]


def _shift(shift: RuleShift, sign: str, code: str = "") -> str:
    return (
        f"{code}{shift.rule}{code} ({shift.slot}): {sign}{shift.decisions} decisions "
        f"(won {shift.before}, now {shift.after})"
    )


def _models(diff: DecisionDiff) -> str:
    change = diff.models_after - diff.models_before
    return f"{diff.models_before:.3f} → {diff.models_after:.3f} ({change:+.3f})"


def render_text(diff: DecisionDiff, old: str, new: str) -> str:
    lines = [
        f"tailor diff {old} ({diff.old}) -> {new} ({diff.new})",
        f"{diff.changed} of {diff.decisions} decisions change ({_share(diff.changed, diff.decisions)})",
    ]
    if diff.not_replayable:
        lines.append(f"{diff.not_replayable} decisions not replayable:")
        lines.extend(f"  {feature}: {count}" for feature, count in diff.unlogged.items())
    lines.append("")
    lines.append("by slot:")
    lines.extend(_slot_line(slot) for slot in diff.slots)
    top = _top(diff)
    if top:
        lines.append("")
        lines.append("top transitions:")
        for t in top:
            users = ", ".join(t.users)
            lines.append(f"  {t.slot}: {_answer(t.before)} -> {_answer(t.after)}: {t.count}  (e.g. {users})")
    if diff.newly_winning or diff.no_longer_winning:
        lines.append("")
        lines.append("rules:")
        lines.extend(f"  newly wins: {_shift(s, '+')}" for s in diff.newly_winning)
        lines.extend(f"  stops winning: {_shift(s, '-')}" for s in diff.no_longer_winning)
    lines.append("")
    lines.append(f"model runs per decision: {_models(diff)}")
    if diff.declarations:
        lines.append("")
        lines.append("declarations:")
        lines.extend(f"  {c.change} {c.kind} {c.name}" for c in diff.declarations)
    for note in diff.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines) + "\n"


def _slot_line(slot: SlotDiff) -> str:
    return f"  {slot.slot}: {slot.changed} of {slot.decisions} changed ({_share(slot.changed, slot.decisions)})"


def render_markdown(diff: DecisionDiff, old: str, new: str) -> str:
    """Ready to paste as a pull-request comment."""
    out = [
        f"### tailor diff: `{old}` → `{new}`",
        "",
        f"**{diff.changed} of {diff.decisions} replayed decisions change "
        f"({_share(diff.changed, diff.decisions)})**; versions `{diff.old}` → `{diff.new}`.",
        "",
        "| slot | decisions | changed | share |",
        "|---|---:|---:|---:|",
    ]
    out.extend(f"| {s.slot} | {s.decisions} | {s.changed} | {_share(s.changed, s.decisions)} |" for s in diff.slots)
    top = _top(diff)
    if top:
        out += [
            "",
            "#### Top transitions",
            "",
            "| slot | from | to | decisions | e.g. users |",
            "|---|---|---|---:|---|",
        ]
        out.extend(
            f"| {t.slot} | {_answer(t.before, '`')} | {_answer(t.after, '`')} | {t.count} | {', '.join(t.users)} |"
            for t in top
        )
    if diff.newly_winning or diff.no_longer_winning:
        out += ["", "#### Rules", ""]
        out.extend(f"- newly wins: {_shift(s, '+', '`')}" for s in diff.newly_winning)
        out.extend(f"- stops winning: {_shift(s, '-', '`')}" for s in diff.no_longer_winning)
    out += ["", "#### Cost", "", f"Model runs per decision: {_models(diff)}"]
    if diff.not_replayable:
        out += ["", "#### Not replayable", "", f"{diff.not_replayable} decisions need values the log lacks:", ""]
        out.extend(f"- `{feature}`: {count}" for feature, count in diff.unlogged.items())
    if diff.declarations:
        out += ["", "#### Declarations changed", ""]
        out.extend(f"- {c.change} {c.kind} `{c.name}`" for c in diff.declarations)
    if diff.notes:
        out.append("")
        out.extend(f"> {note}" for note in diff.notes)
    return "\n".join(out) + "\n"


def render_json(diff: DecisionDiff, old: str, new: str) -> str:
    data = {"old_path": old, "new_path": new, **diff.to_dict()}
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


EMITTERS: dict[str, Callable[[DecisionDiff, str, str], str]] = {
    "text": render_text,
    "markdown": render_markdown,
    "json": render_json,
}
