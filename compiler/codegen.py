"""Python source for a decision plan: one self-contained, readable module.

The generator writes plain Python in the manner of Jinja2's code generator,
and the engine runs that very source (``tailor compile --emit python`` prints
it): ``stage0`` and ``stage1`` apply each feature's predicate table in one
straight-line function per stage (codegen_tables), ``needed`` names the store
features to fetch, one function per distinct stage-2 check decides what the
tables could not (codegen_checks), and ``walk`` picks each slot's best
surviving candidate. A legend maps every candidate bit to its rule, and
``decide`` runs the whole plan on supplied values, so the module works on its
own; it imports only ``bisect`` and the value helpers of ``tailor.compiler``.

No generated function grows with the number of rules: the rules live in the
tables, which keeps CPython's compiler far from its recursion limits. The
source depends on the plan alone, never on hashing: every process writes the
same bytes.
"""

from __future__ import annotations

import marshal
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from types import CodeType
from typing import Any

from .codegen_checks import CheckWriter
from .codegen_names import Namer
from .codegen_source import CodeWriter, Constants, block_literal, dict_lines, mask_literal, one_line
from .codegen_tables import TableWriter
from .features import FeatureRef
from .plan import DecisionPlan, value_type
from .predicate_tables import STAGE_CONTEXT, STAGE_STORE


@dataclass(frozen=True, slots=True, weakref_slot=True)
class CompiledPlan:
    """The generated functions, the source they came from and its code object.

    The functions and their module's namespace refer to each other, a cycle
    only the garbage collector frees, and a server freezes its ruleset out of
    the collector's reach (runtime/heap.py). So the namespace is cleared when
    its ``CompiledPlan`` is freed, and the cycle goes with it: hold the plan,
    not the functions alone.

    Pickled, it is the code object in ``marshal``'s format: the process that
    loads it runs the module again (milliseconds) instead of compiling the
    source (a second or more for tens of thousands of rules). So a server can
    compile in another process and load the result quickly.
    """

    source: str
    code: CodeType = field(repr=False)
    stage0: Callable[..., int]  # (context) -> alive bits
    needed: Callable[..., list[str]]  # (alive) -> texts of store features still needed
    stage1: Callable[..., int]  # (alive, fetched) -> alive bits
    walk: Callable[..., tuple[dict[str, Any], Any]]  # (alive, make_values, choices) -> ({slot: choice}, values)
    checks: tuple[Any, ...]  # by bit: None, or (values) -> bool, for what the tables could not settle

    def __reduce__(self) -> tuple[Any, ...]:
        module = self.stage0.__globals__["__name__"]
        return _unmarshal, (self.source, marshal.dumps(self.code), module, len(self.checks))


def generate(plan: DecisionPlan) -> CompiledPlan:
    """Write the plan's module and run it: the engine calls the functions it defines."""
    source = plan_source(plan)
    code = compile(source, f"<plan {plan.program.name}>", "exec")
    return _run(source, code, f"tailor_plan_{plan.program.name}", len(plan.conjunctions))


def _run(source: str, code: CodeType, module: str, width: int) -> CompiledPlan:
    """Run the module's code: its functions, and the checks by candidate bit."""
    namespace: dict[str, Any] = {"__name__": module}
    exec(code, namespace)
    checks = namespace["CHECKS"]
    compiled = CompiledPlan(
        source,
        code,
        namespace["stage0"],
        namespace["needed"],
        namespace["stage1"],
        namespace["walk"],
        tuple(checks.get(bit) for bit in range(width)),
    )
    weakref.finalize(compiled, namespace.clear)  # see the class's docstring
    return compiled


def _unmarshal(source: str, code: bytes, module: str, width: int) -> CompiledPlan:
    return _run(source, marshal.loads(code), module, width)


def plan_source(plan: DecisionPlan) -> str:
    """The module's text: what ``tailor compile --emit python`` prints."""
    width = len(plan.conjunctions)
    namer = Namer()
    features = {text: namer.name(text, "feature", i) for i, text in enumerate(plan.features)}
    slots = {slot: namer.name(slot, "slot", i) for i, slot in enumerate(plan.slots)}
    constants = Constants(width, plan.all_bits)
    code = CodeWriter()
    tables = TableWriter(features, constants, code)
    store_tables = plan.tables_for(STAGE_STORE)
    code.line()
    code.line()
    tables.stage0([t for t in plan.tables_for(STAGE_CONTEXT) if t.atoms], bool(plan.experiments))
    for write, stage_tables in ((tables.needed, store_tables), (tables.stage1, [t for t in store_tables if t.atoms])):
        code.line()
        code.line()
        write(stage_tables)
    checker = CheckWriter(features)
    checks = {c.bit: name for c in plan.conjunctions if (name := checker.check_for(c)) is not None}
    code.line()
    code.line()
    _walk(code, plan, slots, constants, checks)
    code.line()
    code.line()
    _decide(code, bool(checks), bool(plan.experiments))
    slot_masks = [(repr(s.name), constants.mask(s.mask, slots[s.name], "SLOT"), "") for s in plan.slots.values()]

    out = CodeWriter()
    _head(out, plan, tables.uses_bisect, checker if checks else None)
    _legend(out, plan, features)
    out.line()
    out.line(f"ALL = {mask_literal(plan.all_bits, width)}")
    out.line()
    out.comment("What each bit serves, then each slot's default: (content, rule).")
    entries = [(f"({c.rule.content!r}, {c.rule.name!r})", f"bit {c.bit}") for c in plan.conjunctions]
    entries += [(f"({s.default!r}, None)", f"{s.name}: default") for s in plan.slots.values()]
    out.lines.extend(block_literal("CHOICES = (", entries, ")") if entries else ["CHOICES = ()"])
    for block in constants.blocks:
        out.line()
        out.lines.extend(block)
    out.line()
    out.comment("Each slot's candidate bits.")
    out.lines.extend(dict_lines("SLOTS", slot_masks))
    if checks:
        read = [(text, ref) for text, ref in plan.features.items() if text in checker.reads]
        out.line()
        out.comment("The features the checks read, and the type a value must have to be known (see decide).")
        out.lines.extend(dict_lines("FEATURES", [(repr(text), _ref_source(ref), "") for text, ref in read], True))
        types = [(repr(text), repr(value_type(ref, plan.attribute_kinds)), "") for text, ref in read]
        out.lines.extend(dict_lines("VALUE_TYPES", types))
    for function in checker.functions:
        out.line()
        out.line()
        out.lines.extend(function)
    out.line()
    out.line()
    out.comment("Checks by candidate bit: what the tables left open for it.")
    out.lines.extend(dict_lines("CHECKS", [(str(bit), name, "") for bit, name in checks.items()]))
    out.lines.extend(code.lines)
    return out.source()


def _head(out: CodeWriter, plan: DecisionPlan, uses_bisect: bool, checker: CheckWriter | None) -> None:
    """What the module is and how to use it, and its imports."""
    name = plan.program.name
    out.comment(f"Decision plan for ruleset {name!r}: generated code, do not edit.")
    out.line(f'"""The decision plan of ruleset {name!r}: {_counts(plan)}.')
    out.line()
    out.line("Each conjunction of a rule's condition owns one bit of the candidate set")
    out.line("``alive``. stage0 narrows it with the request context, needed names the")
    out.line("store features a survivor still reads, stage1 narrows it with them, and")
    out.line("walk serves per slot the best survivor whose checks hold (CHOICES).")
    out.line()
    out.line("On its own: decide(context, features, slots=None) -> {slot: (content, rule)},")
    out.line("with every store feature and model score in ``features`` by its text.")
    out.line('"""')
    out.line()
    if uses_bisect:
        out.line("from bisect import bisect_left")
        out.line()
    if checker is not None:
        out.line("from tailor.compiler.features import FeatureKind, FeatureRef")
        helpers = "Values, arith_value" if checker.uses_arithmetic else "Values"
        out.line(f"from tailor.compiler.values import {helpers}")
        out.line()
    out.line()


def _legend(out: CodeWriter, plan: DecisionPlan, features: dict[str, str]) -> None:
    out.comment("Candidates by bit: within a slot a lower bit ranks higher (priority, then source order).")
    rows = [("bit", "slot", "priority", "rule", "source")]
    rows += [
        (str(c.bit), c.rule.slot, str(c.rule.priority), c.rule.name, f"{c.rule.file}:{c.rule.line}")
        for c in plan.conjunctions
    ]
    _columns(out, rows, right=(0, 2))
    out.comment("")
    out.comment("Features by their names in this code.")
    rows = [("name", "feature", "kind")]
    rows += [(features[text], text, ref.kind.value) for text, ref in plan.features.items()]
    _columns(out, rows)


def _walk(
    code: CodeWriter, plan: DecisionPlan, slots: dict[str, str], constants: Constants, checks: dict[int, str]
) -> None:
    """Stage 2: per slot, the lowest surviving bit, unless its check fails; then the next."""
    checked_slots = {plan.conjunctions[bit].rule.slot for bit in checks}
    code.line("def walk(alive, make_values, choices):")
    code.indent()
    code.line('"""Stage 2: per slot, the best surviving candidate whose checks hold, else the default.')
    code.line()
    code.line("Returns {slot: choices[index]}, where index is the winning bit or, for the")
    code.line("default, the slot's entry after the bits in CHOICES: choices=CHOICES gives")
    code.line("(content, rule). Also returns the values the checks read, which")
    code.line("make_values() builds when the first check runs (None if none ran).")
    code.line('"""')
    if checked_slots:
        code.line("V = None")
    for index, slot in enumerate(plan.slots.values()):
        name = slots[slot.name]
        default = constants.width + index
        bits = [bit for bit in checks if slot.first_bit <= bit <= slot.last_bit]
        code.comment(
            f"{slot.name}: "
            + (_bit_range(slot.first_bit, slot.last_bit) if slot.mask else "no rules")
            + (f", {len(bits)} with checks" if bits else "")
            + f"; the default ({slot.default or 'nothing'}) is {default}"
        )
        if not slot.mask:
            code.line(f"{name} = {default}")
            continue
        code.line(f"candidates = alive & {constants.mask(slot.mask, name, 'SLOT')}")
        if not bits:
            code.line(f"{name} = (candidates & -candidates).bit_length() - 1 if candidates else {default}")
            continue
        checked = constants.mask(sum(1 << bit for bit in bits), name, "CHECKED")
        code.line(f"{name} = {default}")
        code.line("while candidates:")
        code.indent()
        code.line("lowest = candidates & -candidates")
        code.line("bit = lowest.bit_length() - 1")
        code.line(f"if lowest & {checked}:")
        code.indent()
        code.line("if V is None:")
        code.indent()
        code.line("V = make_values()")
        code.outdent()
        code.line("if not CHECKS[bit](V):")
        code.indent()
        code.line("candidates ^= lowest")
        code.line("continue")
        code.outdent()
        code.outdent()
        code.line(f"{name} = bit")
        code.line("break")
        code.outdent()
    chosen = ", ".join(f"{s!r}: choices[{slots[s]}]" for s in plan.slots)
    code.line(f"return {{{chosen}}}, {'V' if checked_slots else 'None'}")
    code.outdent()


def _decide(code: CodeWriter, has_checks: bool, has_experiments: bool) -> None:
    """The module's own entry point: the engine's decision, on values supplied by the caller."""
    code.line("def decide(context, features, slots=None):")
    code.indent()
    code.line('"""One decision on supplied values: {slot: (content, rule)}; a default has rule None.')
    code.line()
    code.line("``features`` holds the store features and model scores by their text, e.g.")
    code.line("``{'user.tier': 'gold', 'p_click': 0.8}``; an absent count is 0, anything else")
    code.line("absent is unknown. ``slots`` limits the decision to those slots.")
    if has_experiments:
        code.line("An experiment's arm is given in ``features`` by the experiment's name.")
    code.line('"""')
    code.line("alive = stage0(context, features)" if has_experiments else "alive = stage0(context)")
    code.line("if slots is not None:")
    code.indent()
    code.line("alive &= sum(SLOTS.get(slot, 0) for slot in set(slots))")
    code.outdent()
    code.line("alive = stage1(alive, features)")
    if has_checks:
        code.line("decisions, _ = walk(alive, lambda: Values(context, features, FEATURES, VALUE_TYPES), CHOICES)")
    else:
        code.line("decisions, _ = walk(alive, None, CHOICES)")
    code.line("if slots is None:")
    code.indent()
    code.line("return decisions")
    code.outdent()
    code.line("return {slot: decisions.get(slot, (None, None)) for slot in slots}")
    code.outdent()


def _bit_range(first: int, last: int) -> str:
    return f"bit {first}" if first == last else f"bits {first}-{last}"


def _counts(plan: DecisionPlan) -> str:
    return (
        f"{len(plan.rules)} rules, {len(plan.conjunctions)} conjunctions, "
        f"{len(plan.slots)} slots, {len(plan.features)} features"
    )


def _columns(out: CodeWriter, rows: list[tuple[str, ...]], right: tuple[int, ...] = ()) -> None:
    """Rows as aligned comment columns."""
    widths = [max(map(len, column)) for column in zip(*rows, strict=True)]
    template = "#   " + "  ".join(f"{{:{'>' if i in right else '<'}{w}}}" for i, w in enumerate(widths))
    out.lines.extend(one_line(template.format(*row)).rstrip() for row in rows)


def _ref_source(ref: FeatureRef) -> str:
    """The expression that builds ``ref``, naming only what differs from the defaults."""
    default = FeatureRef(ref.kind, ref.text)
    fields = [f"FeatureKind.{ref.kind.name}", repr(ref.text)]
    fields += [
        f"{field}={getattr(ref, field)!r}"
        for field in ("event", "key", "window", "name")
        if getattr(ref, field) != getattr(default, field)
    ]
    return f"FeatureRef({', '.join(fields)})"
