"""tailor: a real-time personalization engine steered by a small rules language."""

from tailor.dsl.diagnostics import Diagnostic, RulesError, Severity
from tailor.dsl.parser import parse

__all__ = ["Diagnostic", "RulesError", "Severity", "parse"]
