"""A decision plan shown to people: as text, or as a Graphviz DAG."""

from __future__ import annotations

import json

from .ir import Predicate, predicate_features
from .plan import STAGE_CONTEXT, STAGE_MODEL, STAGE_STORE, DecisionPlan, feature_stage

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
