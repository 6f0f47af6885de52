"""Each compiler stage's product shown to people (``tailor compile --emit STAGE``).

The program as checked, the rules in normal form, the models' inputs, the
decision plan as text or as a Graphviz DAG, and the generated Python.
"""

from __future__ import annotations

import json

from tailor.dsl.formatter import cap_text
from tailor.dsl.printer import expression_text

from .check import Program
from .ir import Predicate, condition_text, predicate_features
from .model_inputs import ModelInputs
from .normalize import DNF_LIMIT, NormalProgram
from .pipeline import Compilation
from .plan import DecisionPlan
from .predicate_tables import STAGE_CONTEXT, STAGE_MODEL, STAGE_STORE, feature_stage

EMITS = ("check", "normalize", "model_inputs", "plan", "dot", "python")


def stage_text(compilation: Compilation, emit: str, version: str = "") -> str:
    """What ``--emit`` prints: ``emit`` is a stage's name, ``dot`` (the plan as a graph) or ``python``."""
    if emit == "check":
        return program_text(compilation.program)
    if emit == "normalize":
        return normal_text(compilation.normal)
    if emit == "model_inputs":
        return model_inputs_text(compilation.model_inputs or {})
    if emit == "plan":
        return plan_text(compilation.plan, version)
    if emit == "dot":
        return plan_dot(compilation.plan)
    if emit in ("python", "generate"):
        return compilation.compiled.source
    raise ValueError(f"nothing to emit called {emit!r}; choose one of {', '.join(EMITS)}")


def program_text(program: Program) -> str:
    """The checked program: its declarations by kind, and every attribute's type."""
    lines = [f"ruleset {program.name}", ""]
    lines += [f"content {name}" for name in program.contents]
    lines += [f"segment {name} = {expression_text(decl.condition)}" for name, decl in program.segments.items()]
    lines += [f'model {name} = "{decl.path.value}"' for name, decl in program.models.items()]
    lines.append("")
    for slot in program.slots:
        default = program.defaults.get(slot)
        lines.append(f"slot {slot}  (default: {default.content.name if default else 'nothing'})")
        for rule in program.rules:
            if rule.slot == slot:
                condition = expression_text(rule.decl.condition)
                cap = f"  [{cap_text(rule.decl.cap)}]" if rule.decl.cap is not None else ""
                lines.append(
                    f"  rule {rule.name} (priority {rule.priority}) -> {rule.decl.content.name}: {condition}{cap}"
                )
    if program.attribute_types:
        lines += ["", "attribute types"]
        lines += [f"  {text}: {kind}" for text, kind in sorted(program.attribute_types.items())]
    return "\n".join(lines) + "\n"


def normal_text(normal: NormalProgram) -> str:
    """One line per rule's normal form, then one per conjunction of its DNF when there are several."""
    lines = [f"ruleset {normal.program.name}: {len(normal.rules)} rules in normal form", ""]
    for normal_rule in normal.rules:
        rule = normal_rule.rule
        lines.append(f"rule {rule.name}  (slot {rule.slot}, priority {rule.priority})")
        lines.append(f"  when {condition_text(normal_rule.condition)}")
        if normal_rule.disjuncts is None:
            lines.append(f"  dnf: more than {DNF_LIMIT} conjunctions, kept whole")
        elif len(normal_rule.disjuncts) > 1:
            for conjunction in normal_rule.disjuncts:
                lines.append("  or: " + (" and ".join(p.text() for p in conjunction) or "true"))
        if normal_rule.cap is not None:
            lines.append(f"  {normal_rule.cap.text}: {normal_rule.cap.atom.text()} in every conjunction")
    return "\n".join(lines) + "\n"


def model_inputs_text(inputs: ModelInputs) -> str:
    """Each model's inputs in order, with the features each reads."""
    if not inputs:
        return "no models\n"
    lines = []
    for model, model_inputs in inputs.items():
        lines.append(f"model {model}: {len(model_inputs)} inputs")
        for index, model_input in enumerate(model_inputs):
            kind = "true/false" if model_input.condition is not None else "number"
            reads = ", ".join(ref.text for ref in model_input.refs)
            lines.append(f"  {index}: {model_input.text}  [{kind}; reads {reads}]")
    return "\n".join(lines) + "\n"


STAGE_NAMES = {
    STAGE_CONTEXT: "stage 0: request context (free)",
    STAGE_STORE: "stage 1: store features (one batched fetch)",
    STAGE_MODEL: "stage 2: models (inference, only for open candidates)",
}


def plan_text(plan: DecisionPlan, version: str = "") -> str:
    program = plan.program
    lines = [
        f"ruleset {program.name}" + (f" (version {version})" if version else ""),
        f"  {len(plan.rules)} rules, {len(plan.conjunctions)} conjunctions, {len(plan.features)} features,"
        f" {len(plan.predicates)} distinct predicates",
        "",
    ]
    for stage, title in STAGE_NAMES.items():
        tables = plan.tables_for(stage)
        if not tables:
            continue
        lines.append(title)
        for table in tables:
            rules = bin(table.uses).count("1")
            kind = "table" if table.atoms else "read by checks"
            lines.append(f"  {table.ref.text}  [{kind}; {len(table.atoms)} predicates; used by {rules} conjunctions]")
        lines.append("")
    for slot in plan.slots.values():
        lines.append(f"slot {slot.name}  (default: {slot.default or 'nothing'})")
        for bit in range(slot.first_bit, slot.last_bit + 1):
            conjunction = plan.conjunctions[bit]
            rule = conjunction.rule
            if conjunction.formula is not None:
                body = "(evaluated as a whole)"
            else:
                tables = " and ".join(p.text() for p in conjunction.atoms) or "-"
                checks = " and ".join(p.text() for p in conjunction.residual)
                body = f"tables: {tables}" + (f" | then: {checks}" if checks else "")
            lines.append(f"  #{bit} {rule.name} (priority {rule.priority}) -> {rule.content}: {body}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def plan_dot(plan: DecisionPlan) -> str:
    """Features feed predicates, predicates feed rules, rules feed slots; shared nodes appear once."""

    def quote(text: str) -> str:
        return json.dumps(text)

    lines = [
        "digraph plan {",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=10];',
    ]
    predicate_ids: dict[Predicate, str] = {}
    feature_ids: dict[str, str] = {}
    colors = {STAGE_CONTEXT: "#d5f5e3", STAGE_STORE: "#d6eaf8", STAGE_MODEL: "#fadbd8"}
    for stage, title in STAGE_NAMES.items():
        refs = [ref for ref in plan.features.values() if feature_stage(ref) == stage]
        if not refs:
            continue
        lines.append(f"  subgraph cluster_stage{stage} {{")
        lines.append(f"    label={quote(title)}; style=filled; color={quote(colors[stage])};")
        for ref in refs:
            node = feature_ids.setdefault(ref.text, f"f{len(feature_ids)}")
            lines.append(f"    {node} [label={quote(ref.text)}, shape=box, style=rounded];")
        lines.append("  }")
    for predicate in plan.predicates:
        node = predicate_ids.setdefault(predicate, f"p{len(predicate_ids)}")
        lines.append(f"  {node} [label={quote(predicate.text())}, shape=ellipse];")
        for ref in predicate_features(predicate):
            lines.append(f"  {feature_ids[ref.text]} -> {node};")
    rule_ids: dict[str, str] = {}
    for conjunction in plan.conjunctions:
        rule = conjunction.rule
        rule_node = rule_ids.get(rule.name)
        if rule_node is None:
            rule_node = rule_ids[rule.name] = f"r{len(rule_ids)}"
            label = f"{rule.name}\\npriority {rule.priority} -> {rule.content}"
            lines.append(f'  {rule_node} [label="{label}", shape=note];')
        for predicate in (*conjunction.atoms, *conjunction.residual):
            lines.append(f"  {predicate_ids[predicate]} -> {rule_node};")
    for slot in plan.slots.values():
        slot_node = f"slot_{len(lines)}"
        lines.append(f"  {slot_node} [label={quote('slot ' + slot.name)}, shape=doubleoctagon];")
        seen = set()
        for bit in range(slot.first_bit, slot.last_bit + 1):
            rule_node = rule_ids[plan.conjunctions[bit].rule.name]
            if rule_node not in seen:
                seen.add(rule_node)
                lines.append(f"  {rule_node} -> {slot_node};")
    lines.append("}")
    return "\n".join(lines) + "\n"
