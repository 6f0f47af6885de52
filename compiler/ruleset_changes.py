"""Which declarations differ between two versions of a ruleset: the static half of ``tailor diff``.

Declarations are compared by kind and name as the formatter lays them out,
so moving a rule to another file, re-indenting it or editing a comment is
no change, while any edit to what it says is. A model is changed too when
its file's bytes are (its version).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tailor.dsl import ast
from tailor.dsl.formatter import format_module

from .ruleset import Ruleset


@dataclass(frozen=True, slots=True)
class DeclarationChange:
    kind: str = field(metadata={"doc": "rule, content, segment, model, default, experiment or holdout"})
    name: str = field(metadata={"doc": "for a default, its slot"})
    change: str = field(metadata={"doc": "added, removed or changed"})

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "change": self.change}


def declarations(ruleset: Ruleset) -> dict[tuple[str, str], str]:
    """Each declaration that decides something, by (kind, name), as the formatter writes it."""
    program = ruleset.program
    found: dict[tuple[str, str], str] = {}
    for rule in program.rules:
        found["rule", rule.name] = _text(rule.decl)
    for kinds, decls in (
        ("content", program.contents),
        ("segment", program.segments),
        ("model", program.models),
        ("default", program.defaults),
        ("experiment", program.experiments),
    ):
        for name, decl in decls.items():
            found[kinds, name] = _text(decl)
    for name, model in ruleset.models.items():
        found["model", name] += f"\n{model.version}"
    if program.holdout is not None:
        found["holdout", "holdout"] = _text(program.holdout)
    return found


def changes(old: Ruleset, new: Ruleset) -> tuple[DeclarationChange, ...]:
    """What differs from ``old`` to ``new``: by kind, then name."""
    before, after = declarations(old), declarations(new)
    found = [
        DeclarationChange(kind, name, _change(before, after, (kind, name)))
        for kind, name in sorted(before.keys() | after.keys())
        if before.get((kind, name)) != after.get((kind, name))
    ]
    return tuple(found)


def _change(before: Mapping[tuple[str, str], str], after: Mapping[tuple[str, str], str], key: tuple[str, str]) -> str:
    if key not in before:
        return "added"
    return "removed" if key not in after else "changed"


def _text(decl: Any) -> str:
    return format_module(ast.Module((decl,)))
