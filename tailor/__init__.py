"""tailor: a real-time personalization engine steered by a small rules language.

import tailor
ruleset = tailor.load("rulesets/retail")
engine = tailor.Engine(ruleset)
decision = engine.decide(user_id="u42", context={"page": "home"}, features={"user.tier": "gold"})
decision.slots["hero"].content
"""

from tailor.compiler.evaluate import CandidateTrace, Decision, Explanation, SlotDecision, SlotTrace
from tailor.compiler.ruleset import RuleInfo, Ruleset, load, loads
from tailor.dsl.diagnostics import Diagnostic, RulesError, Severity
from tailor.dsl.parser import parse
from tailor.runtime.engine import Engine

__all__ = [
    "CandidateTrace",
    "Decision",
    "Diagnostic",
    "Engine",
    "Explanation",
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
