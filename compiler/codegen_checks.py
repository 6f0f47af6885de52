"""Stage-2 code: what the predicate tables could not settle, as plain functions.

One function per distinct check, shared by every candidate bit that needs it
(a rule with an ``or`` often leaves the same model test on several bits).
A check is true when all of its predicates are true; unknown is not true.
A condition too large to expand, and a condition used as a value, become a
three-valued function per ``and``/``or`` node (True, False, or None for
unknown), so no generated expression nests deeper than the rules do.
"""

from __future__ import annotations

from collections.abc import Mapping

from .codegen_names import Namer
from .codegen_source import COMMENT_LENGTH, CodeWriter, one_line, value_literal
from .ir import All, Any_, Arith, Atom, Condition, CondTerm, Const, Feature, Neg, Predicate, Term, Truth, condition_text
from .plan import Conjunction


class CheckWriter:
    """Writes check functions on demand; ``functions`` holds them in an order where helpers come first."""

    def __init__(self, features: Mapping[str, str]):
        self._features = features  # feature text -> its name in the code
        self._checks: dict[tuple, str] = {}
        self._truths: dict[Condition, str] = {}
        self._names = Namer()
        self.functions: list[list[str]] = []
        self.uses_arithmetic = False
        self.reads: set[str] = set()  # texts of the features the checks read

    def check_for(self, conjunction: Conjunction) -> str | None:
        """The name of the function deciding what the tables left open for ``conjunction``, if anything."""
        if conjunction.formula is not None:
            key: tuple = ("formula", conjunction.formula)
        elif conjunction.residual:
            key = ("residual", conjunction.residual)
        else:
            return None
        name = self._checks.get(key)
        if name is None:
            name = "check_" + self._names.name(conjunction.rule.name, "rule", conjunction.bit)
            self._checks[key] = name
            if conjunction.formula is not None:
                self._formula_check(name, conjunction.formula)
            else:
                self._residual_check(name, conjunction.residual)
        return name

    def truth_function(self, condition: Condition) -> str:
        """The name of a function of ``V`` giving the three-valued truth of ``condition`` (True, False, None)."""
        return self._truth(condition)

    def term_expression(self, term: Term) -> str:
        """An expression over ``V`` giving the term's value, None when it is unknown."""
        return self._term(term)

    def _residual_check(self, name: str, residual: tuple[Predicate, ...]) -> None:
        writer = CodeWriter()
        writer.line(f"def {name}(V):")
        writer.indent()
        writer.comment(one_line(" and ".join(p.text() for p in residual), COMMENT_LENGTH))
        for predicate in residual:
            setup, unknown, holds = self._predicate(predicate)
            for line in setup:
                writer.line(line)
            writer.line(f"if {unknown} or not ({holds}):" if unknown else f"if {_negation(holds)}:")
            writer.indent()
            writer.line("return False")
            writer.outdent()
        writer.line("return True")
        self.functions.append(writer.lines)

    def _formula_check(self, name: str, formula: Condition) -> None:
        truth = self._truth(formula)
        writer = CodeWriter()
        writer.line(f"def {name}(V):")
        writer.indent()
        writer.comment("too large to expand: the whole condition, which must be true (unknown is not)")
        writer.line(f"return {truth}(V) is True")
        self.functions.append(writer.lines)

    def _truth(self, condition: Condition) -> str:
        """The name of a function giving the three-valued truth of ``condition``."""
        name = self._truths.get(condition)
        if name is not None:
            return name
        writer = CodeWriter()
        body = CodeWriter()
        body.indent()
        body.comment(one_line(condition_text(condition), COMMENT_LENGTH))
        if isinstance(condition, All | Any_):
            # Every item is evaluated, as the interpreter does: the models an item runs are part of the decision.
            settles, rest = (False, True) if isinstance(condition, All) else (True, False)
            body.line("settled = unknown = False")
            for item in condition.items:
                self._truth_of(body, item)
                body.line(f"if truth is {settles}:")
                body.indent()
                body.line("settled = True")
                body.outdent()
                body.line("elif truth is None:")
                body.indent()
                body.line("unknown = True")
                body.outdent()
            body.line(f"return {settles} if settled else None if unknown else {rest}")
        else:
            self._truth_of(body, condition)
            body.line("return truth")
        name = self._truths[condition] = f"truth_{len(self._truths)}"
        writer.line(f"def {name}(V):")
        self.functions.append(writer.lines + body.lines)
        return name

    def _truth_of(self, writer: CodeWriter, condition: Condition) -> None:
        """Lines that set ``truth`` to the three-valued truth of ``condition``."""
        if isinstance(condition, Truth):
            writer.line(f"truth = {condition.value!r}")
        elif isinstance(condition, All | Any_):
            writer.line(f"truth = {self._truth(condition)}(V)")
        else:
            setup, unknown, holds = self._predicate(condition)
            for line in setup:
                writer.line(line)
            writer.line(f"truth = None if {unknown} else {holds}" if unknown else f"truth = {holds}")

    def _predicate(self, predicate: Predicate) -> tuple[list[str], str | None, str]:
        """Lines reading the predicate's sides, a test that it is unknown (None: it never is), and its comparison."""
        op = predicate.op
        if isinstance(predicate, Atom):
            text = predicate.feature.text
            self.reads.add(text)
            left = self._features[text]
            setup = [f"{left} = V[{text!r}]"]
            right = None if op in ("missing", "present") else value_literal(predicate.value)
        else:
            left = "left"
            setup = [f"left = {self._term(predicate.left)}"]
            right = None
            if predicate.right is not None:
                right = self._term(predicate.right)
                if not isinstance(predicate.right, Const):
                    setup.append(f"right = {right}")
                    right = "right"
        if op == "missing":
            return setup, None, f"{left} is None"
        if op == "present":
            return setup, None, f"{left} is not None"
        if right == "None":  # compared with unknown: never true, never false
            return setup, "True", "False"
        unknown = f"{left} is None" + (" or right is None" if right == "right" else "")
        return setup, unknown, f"{left} {op} {right}"

    def _term(self, term: Term) -> str:
        """An expression that is None when the term is unknown."""
        if isinstance(term, Const):
            return value_literal(term.value)
        if isinstance(term, Feature):
            self.reads.add(term.ref.text)
            return f"V[{term.ref.text!r}]"
        if isinstance(term, CondTerm):
            return f"{self._truth(term.condition)}(V)"
        self.uses_arithmetic = True
        if isinstance(term, Neg):
            return f"arith_value('neg', {self._term(term.operand)}, 0)"
        assert isinstance(term, Arith)
        return f"arith_value({term.op!r}, {self._term(term.left)}, {self._term(term.right)})"


def _negation(test: str) -> str:
    if test.endswith(" is not None"):
        return test.removesuffix(" is not None") + " is None"
    if test.endswith(" is None"):
        return test.removesuffix(" is None") + " is not None"
    return f"not ({test})"
