"""tailor: a real-time personalization engine steered by a small rules language.

import tailor
ruleset = tailor.load("rulesets/retail")
engine = tailor.Engine(ruleset)
decision = engine.decide(user_id="u42", context={"page": "home"}, features={"user.tier": "gold"})
decision.slots["hero"].content
"""

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
