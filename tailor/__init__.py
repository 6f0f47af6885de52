"""tailor: a real-time personalization engine steered by a small rules language.

import tailor
ruleset = tailor.load("rulesets/retail")
engine = tailor.Engine(ruleset)
decision = engine.decide(user_id="u42", context={"page": "home"}, features={"user.tier": "gold"})
decision.slots["hero"].content
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tailor.compiler.decide import Decision, SlotDecision
    from tailor.compiler.explain import CandidateTrace, Explanation, SlotTrace
    from tailor.compiler.ruleset import RuleInfo, Ruleset, loads
    from tailor.dsl.diagnostics import Diagnostic, RulesError, Severity
    from tailor.dsl.parser import parse
    from tailor.runtime.engine import Engine
    from tailor.runtime.events import Event
    from tailor.runtime.memory_store import MemoryStore
    from tailor.runtime.ruleset_loader import load

__all__ = [
    "CandidateTrace",
    "Decision",
    "Diagnostic",
    "Engine",
    "Event",
    "Explanation",
    "MemoryStore",
    "RuleInfo",
    "RulesError",
    "Ruleset",
    "Severity",
    "SlotDecision",
    "SlotTrace",
    "load",
    "loads",
    "parse",
]

# Where each public name lives. They are imported on first use, so that a
# program that needs only the language (``import tailor.dsl``, the CLI's
# ``--help``) does not load the compiler, the runtime and their dependencies.
_HOMES = {
    "CandidateTrace": "tailor.compiler.explain",
    "Decision": "tailor.compiler.decide",
    "Explanation": "tailor.compiler.explain",
    "SlotDecision": "tailor.compiler.decide",
    "SlotTrace": "tailor.compiler.explain",
    "RuleInfo": "tailor.compiler.ruleset",
    "Ruleset": "tailor.compiler.ruleset",
    "loads": "tailor.compiler.ruleset",
    "Diagnostic": "tailor.dsl.diagnostics",
    "RulesError": "tailor.dsl.diagnostics",
    "Severity": "tailor.dsl.diagnostics",
    "parse": "tailor.dsl.parser",
    "Engine": "tailor.runtime.engine",
    "Event": "tailor.runtime.events",
    "load": "tailor.runtime.ruleset_loader",
    "MemoryStore": "tailor.runtime.memory_store",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value  # later look-ups find it without coming here
    return value


def __dir__() -> list[str]:
    """The public names, whether imported yet or not, with the dunders and the subpackages imported so far."""
    loaded = (name for name, value in globals().items() if name.startswith("__") or isinstance(value, ModuleType))
    return sorted({*__all__, *loaded})
