"""Store round trips, model runs and features per decision, against what a perfect oracle needs.

Run: python -m bench.oracle [--quick] [--redis URL] [--db N]

The oracle knows every value: it reads all of a user's features and runs
every model, none of which it counts. It then asks what a decision procedure
must at least learn to be sure of the decision. For each slot it must show
that the winning rule's condition is true and that the condition of every
rule ranked above it is not (with no winner, that no rule's is). A proof is a
set of predicates whose values force those outcomes under the language's
three-valued logic (``and`` is false once one operand is false, ``or`` true
once one operand is true; an unknown operand settles neither), and it costs
what its predicates read:

- one store round trip, unless every predicate reads only the request's context;
- one model run per distinct model it reads;
- the store features it reads (a model's inputs included).

Round trips and model runs are exact minima: the oracle looks for a proof
that reads nothing from the store, and for one with the fewest models (every
set of models, smallest first). Predicates are taken as independent (the
oracle does not notice that ``x > 1 and x < 1`` is false unread). The
feature count is that of a small proof found greedily (the least is a
set-cover problem), so it is an upper bound on what the oracle needs.

The engine is the serving path itself: ``DecisionService`` over a real
``RedisStore``, users seeded as ``bench.serve`` seeds them, every slot
requested, all at one fixed ``at``, with Redis already holding the fetch
script (its very first use costs one more round trip, once per Redis). Its decisions must equal the oracle's,
and it must never need less than the oracle's minimum (that would be a bug in
one of them): either stops the benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailor.bucketing import bucket_ranges, choose_arm
from tailor.bucketing import hash as bucket_hash
from tailor.compiler.check import Program
from tailor.compiler.features import FeatureKind, FeatureRef
from tailor.compiler.model_inputs import input_vector
from tailor.compiler.ruleset import Ruleset
from tailor.dsl import ast
from tailor.dsl.printer import expression_text
from tailor.runtime.redis_store import RedisStore
from tailor.runtime.service import DecisionService

from . import serve
from .baselines import NaiveInterpreter, default_content, rules_by_slot
from .targets import Target
from .workload import MODEL_FILE, ruleset_text

RETAIL = Path(__file__).resolve().parents[1] / "rulesets" / "retail"
GENERATED_RULES = 1000
GENERATED_MODEL_SHARE = 0.1

# What a proof must show about a condition.
TRUE, NOT_TRUE, FALSE, NOT_FALSE = "true", "not true", "false", "not false"
_NEGATED = {TRUE: FALSE, FALSE: TRUE, NOT_TRUE: NOT_FALSE, NOT_FALSE: NOT_TRUE}
# Under ``and``, these goals need every operand to meet them; under ``or`` the other two do.
_EVERY_UNDER_AND = frozenset({TRUE, NOT_FALSE})


def _holds(goal: str, value: Any) -> bool:
    if goal == TRUE:
        return value is True
    if goal == FALSE:
        return value is False
    if goal == NOT_TRUE:
        return value is not True
    return value is not False


class OracleMismatch(AssertionError):
    """The engine decided otherwise than the oracle, or needed less than its minimum."""


@dataclass(frozen=True, slots=True)
class Reads:
    """What one predicate reads: store features (by text) and models (by name)."""

    store: frozenset[str]
    models: frozenset[str]


@dataclass(frozen=True, slots=True)
class Need:
    """The least one decision requires."""

    round_trips: int
    models: int
    features: int  # store features of a small proof (an upper bound on the least)


class Oracle:
    """Proofs of one program's decisions, for requests whose every value is known."""

    def __init__(self, program: Program, model_inputs: Mapping[str, Iterable[FeatureRef]]):
        self.program = program
        self.naive = NaiveInterpreter(program)
        self.slots = rules_by_slot(program)
        self.models = tuple(sorted(program.models))
        self._model_store = {
            name: frozenset(ref.text for ref in refs if ref.kind is not FeatureKind.CONTEXT)
            for name, refs in model_inputs.items()
        }
        self._reads: dict[int, Reads] = {}

    def winners(self, context: Mapping[str, Any], features: Mapping[str, Any]) -> dict[str, str | None]:
        """The content each slot shows (as the naive interpreter decides)."""
        return self.naive.decide(context, features)

    def need(self, context: Mapping[str, Any], features: Mapping[str, Any]) -> Need:
        """The least a procedure must learn to be sure of this request's decision."""
        proof = _Proof(self, context, features)
        goals = proof.goals()
        trips = 0 if proof.provable_all(goals, lambda reads: not reads.store and not reads.models) else 1
        return Need(trips, proof.fewest_models(goals), len(proof.small(goals)))

    def reads(self, predicate: ast.Expr) -> Reads:
        found = self._reads.get(id(predicate))
        if found is None:
            found = self._reads[id(predicate)] = self._walk(predicate)
        return found

    def _walk(self, predicate: ast.Expr) -> Reads:
        store: set[str] = set()
        models: set[str] = set()
        stack = [predicate]
        while stack:
            node = stack.pop()
            match node:
                case ast.Attribute(scope="user"):
                    store.add(expression_text(node))
                case ast.Call():
                    store.add(expression_text(node))
                case ast.Name(name) if name in self.program.models:
                    models.add(name)
                    store |= self._model_store.get(name, frozenset())
                case ast.Name(name) if name in self.program.segments:
                    stack.append(self.program.segments[name].condition)
                case ast.And(operands) | ast.Or(operands):
                    stack.extend(operands)
                case ast.Not(operand) | ast.Negate(operand) | ast.IsMissing(operand):
                    stack.append(operand)
                case ast.Compare(_, left, right) | ast.Arithmetic(_, left, right):
                    stack.extend((left, right))
                case ast.ListLiteral(items):
                    stack.extend(items)
        return Reads(frozenset(store), frozenset(models))


class _Proof:
    """The proof search for one request: predicate values are computed once."""

    def __init__(self, oracle: Oracle, context: Mapping[str, Any], features: Mapping[str, Any]):
        self.oracle = oracle
        self.context = context
        self.features = features
        self._values: dict[int, Any] = {}

    def value(self, expr: ast.Expr) -> Any:
        key = id(expr)
        if key not in self._values:
            self._values[key] = self.oracle.naive.evaluate(expr, self.context, self.features)
        return self._values[key]

    def goals(self) -> list[tuple[ast.Expr, str]]:
        """Per slot: the winner's condition is true, and every condition ranked above it is not."""
        goals: list[tuple[ast.Expr, str]] = []
        for rules in self.oracle.slots.values():
            for rule in rules:
                condition = rule.decl.condition
                if self.value(condition) is True:
                    goals.append((condition, TRUE))
                    break
                goals.append((condition, NOT_TRUE))
        return goals

    def _parts(self, expr: ast.Expr, goal: str) -> tuple[str, list[tuple[ast.Expr, str]]] | None:
        """How ``goal`` on a connective splits: ("every" | "some", operand goals); None for a predicate."""
        match expr:
            case ast.And(operands):
                return ("every" if goal in _EVERY_UNDER_AND else "some"), [(o, goal) for o in operands]
            case ast.Or(operands):
                return ("some" if goal in _EVERY_UNDER_AND else "every"), [(o, goal) for o in operands]
            case ast.Not(operand):
                return "every", [(operand, _NEGATED[goal])]
            case ast.Name(name) if name in self.oracle.program.segments:
                return "every", [(self.oracle.program.segments[name].condition, goal)]
        return None

    def provable(self, expr: ast.Expr, goal: str, allowed: Callable[[Reads], bool]) -> bool:
        """Whether predicates that ``allowed`` admits can prove ``goal``."""
        parts = self._parts(expr, goal)
        if parts is None:
            if not _holds(goal, self.value(expr)):
                return False
            return isinstance(expr, ast.Boolean) or allowed(self.oracle.reads(expr))
        how, operands = parts
        results = (self.provable(operand, sub, allowed) for operand, sub in operands)
        return all(results) if how == "every" else any(results)

    def provable_all(self, goals: Sequence[tuple[ast.Expr, str]], allowed: Callable[[Reads], bool]) -> bool:
        return all(self.provable(expr, goal, allowed) for expr, goal in goals)

    def fewest_models(self, goals: Sequence[tuple[ast.Expr, str]]) -> int:
        models = self.oracle.models
        for size in range(len(models) + 1):
            for chosen in itertools.combinations(models, size):
                allowed_models = frozenset(chosen)
                if self.provable_all(goals, lambda reads, m=allowed_models: reads.models <= m):
                    return size
        raise AssertionError("a decision that no set of models proves")  # every model allowed proves it

    def small(self, goals: Sequence[tuple[ast.Expr, str]]) -> frozenset[str]:
        """The store features of a small proof: per ``some``, the operand whose proof reads least."""
        features: set[str] = set()
        for expr, goal in goals:
            found = self._smallest(expr, goal)
            assert found is not None, "the goals are true, so they are provable"
            features |= found
        return frozenset(features)

    def _smallest(self, expr: ast.Expr, goal: str) -> frozenset[str] | None:
        parts = self._parts(expr, goal)
        if parts is None:
            if not _holds(goal, self.value(expr)):
                return None
            return frozenset() if isinstance(expr, ast.Boolean) else self.oracle.reads(expr).store
        how, operands = parts
        proofs = [self._smallest(operand, sub) for operand, sub in operands]
        if how == "every":
            if any(proof is None for proof in proofs):
                return None
            return frozenset().union(*proofs)  # type: ignore[arg-type]
        found = [proof for proof in proofs if proof is not None]
        return min(found, key=len) if found else None


# --- every value of a request ---


def known_values(ruleset: Ruleset, context: Mapping[str, Any], fetched: Mapping[str, Any]) -> dict[str, Any]:
    """Every feature of the plan by text: context from the request, the rest from a full fetch,
    each model's prediction computed from those."""
    values: dict[str, Any] = {}
    for text, ref in ruleset.plan.features.items():
        if ref.kind is FeatureKind.CONTEXT:
            values[text] = context.get(ref.name)
        elif ref.kind is not FeatureKind.MODEL:
            values[text] = fetched.get(text, 0 if ref.zero_when_absent else None)
    for name, model in ruleset.models.items():
        values[name] = float(model.predict_one(input_vector(ruleset.plan.model_inputs[name], values)))
    return values


def arms_of(ruleset: Ruleset, user_id: str) -> dict[str, str | None]:
    """Each experiment's arm for ``user_id``, drawn with ``tailor.bucketing`` from the declarations alone."""
    arms: dict[str, str | None] = {}
    for name, experiment in ruleset.plan.experiments.items():
        ranges = bucket_ranges(len(experiment.arms), experiment.coverage, experiment.weights)
        index = choose_arm(bucket_hash(experiment.seed, user_id), ranges)
        arms[name] = experiment.arms[index] if index >= 0 else None
    return arms


def held_out(ruleset: Ruleset, user_id: str) -> bool:
    holdout = ruleset.plan.holdout
    return holdout is not None and bucket_hash(holdout.seed, user_id) < holdout.share


def store_refs(ruleset: Ruleset) -> list[FeatureRef]:
    return [ref for ref in ruleset.plan.features.values() if ref.kind not in (FeatureKind.CONTEXT, FeatureKind.MODEL)]


# --- one workload ---


async def _compare(path: Path, url: str, requests: Sequence[dict[str, Any]], at: float) -> dict[str, Any]:
    engine_store = RedisStore(url, timeout=serve.PATIENT_TIMEOUT)
    oracle_store = RedisStore(url, timeout=serve.PATIENT_TIMEOUT)
    service = DecisionService(path, engine_store, sample_every=0, deadline_ms=serve.PATIENT_TIMEOUT * 1000)
    try:
        served = service.open()
        ruleset = served.ruleset
        oracle = Oracle(ruleset.program, {name: _refs(inputs) for name, inputs in ruleset.plan.model_inputs.items()})
        everything = store_refs(ruleset)
        # Redis runs the fetch script by digest and needs it sent once: do that before counting.
        await oracle_store.fetch(requests[0]["user_id"], everything, at)
        engine_rows: list[tuple[int, int, int]] = []
        oracle_rows: list[Need] = []
        inferences = 0
        for index, body in enumerate(requests):
            user, context = body["user_id"], body["context"]
            trips, runs = engine_store.round_trips, served.models.runs
            outcomes = (await service.decide(user, context, None, None, at)).outcomes
            decision = outcomes.decision
            engine_rows.append((engine_store.round_trips - trips, len(decision.models_run), len(decision.fetched)))
            inferences += served.models.runs - runs

            if held_out(ruleset, user):  # defaults only, from the request alone
                expected = {slot: default_content(ruleset.program, slot) for slot in oracle.slots}
                got = {slot: answer.content for slot, answer in decision.slots.items()}
                if got != expected:
                    raise OracleMismatch(f"{path.name}, request {index}: held out, the engine decided {got}")
                oracle_rows.append(Need(0, 0, 0))
                continue
            values = known_values(ruleset, context, await oracle_store.fetch(user, everything, at))
            features = {text: value for text, value in values.items() if not text.startswith("context.")}
            features |= arms_of(ruleset, user)
            expected = oracle.winners(context, features)
            got = {slot: answer.content for slot, answer in decision.slots.items()}
            if got != expected:
                raise OracleMismatch(f"{path.name}, request {index}: the engine decided {got}, the oracle {expected}")
            need = oracle.need(context, features)
            if engine_rows[-1][0] < need.round_trips or engine_rows[-1][1] < need.models:
                raise OracleMismatch(
                    f"{path.name}, request {index}: the engine needed {engine_rows[-1][:2]} (round trips, models), "
                    f"less than the oracle's least {need.round_trips, need.models}"
                )
            oracle_rows.append(need)
    finally:
        await engine_store.close()
        await oracle_store.close()
    n = len(requests)
    engine_trips, engine_models, engine_features = (sum(column) / n for column in zip(*engine_rows, strict=True))
    return {
        "rules": len(ruleset.program.rules),
        "models": len(ruleset.models),
        "requests": n,
        "engine": {
            "round_trips": engine_trips,
            "models": engine_models,
            "inferences": inferences / n,
            "features": engine_features,
        },
        "oracle": {
            "round_trips": statistics.mean(need.round_trips for need in oracle_rows),
            "models": statistics.mean(need.models for need in oracle_rows),
            "features": statistics.mean(need.features for need in oracle_rows),
        },
        "excess": {
            "round_trips": sum(row[0] > need.round_trips for row, need in zip(engine_rows, oracle_rows, strict=True)),
            "models": sum(row[1] > need.models for row, need in zip(engine_rows, oracle_rows, strict=True)),
        },
    }


def _refs(inputs: Iterable[Any]) -> list[FeatureRef]:
    return [ref for model_input in inputs for ref in model_input.refs]


def run(
    quick: bool = False,
    redis_base: str | None = None,
    db: int = serve.DEFAULT_DB,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Seed Redis with users, then compare the engine with the oracle on two rulesets."""
    say = progress or (lambda message: None)
    users, n = (200, 100) if quick else (2000, 1000)
    url = serve.redis_url(redis_base, db)
    serve.empty_db(url)
    workdir = Path(tempfile.mkdtemp(prefix="tailor-oracle-"))
    try:
        say(f"seeding {users:,} users")
        seeded = serve.seed(url, users)
        generated = workdir / "generated"
        (generated / Path(MODEL_FILE).parent).mkdir(parents=True)
        shutil.copy(RETAIL / MODEL_FILE, generated / MODEL_FILE)
        (generated / "bench.rules").write_text(ruleset_text(GENERATED_RULES, model_share=GENERATED_MODEL_SHARE))
        requests = serve.make_requests(users, n)
        at = time.time()
        workloads = {}
        for name, path in (("retail", RETAIL), ("generated", generated)):
            say(f"the engine against the oracle: {name}")
            workloads[name] = asyncio.run(_compare(path, url, requests, at))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        serve.empty_db(url)
    return {
        "users": users,
        "events": seeded["events"],
        "generated_model_share": GENERATED_MODEL_SHARE,
        "workloads": workloads,
    }


def _ratio(engine: float, oracle: float) -> float:
    if oracle == 0:
        return 1.0 if engine == 0 else math.inf
    return engine / oracle


def targets(result: dict[str, Any]) -> list[Target]:
    """The compiler issue's promise: one round trip, and a model only when cheaper conditions cannot settle it."""
    found = []
    for name, workload in result["workloads"].items():
        engine, oracle = workload["engine"], workload["oracle"]
        found.append(
            Target(
                f"{name}: store round trips per decision ≤ the oracle's least",
                _ratio(engine["round_trips"], oracle["round_trips"]),
                1.0,
                "x",
            )
        )
        found.append(
            Target(
                f"{name}: model runs per decision ≤ the oracle's least",
                _ratio(engine["models"], oracle["models"]),
                1.0,
                "x",
            )
        )
    return found


def report(result: dict[str, Any]) -> str:
    lines = [
        f"{result['users']:,} users with {result['events']:,} events in Redis; every slot requested; per decision:",
        f"{'':28}{'round trips':>13}{'models':>9}{'features':>10}   engine above the oracle (decisions)",
    ]
    for name, workload in result["workloads"].items():
        engine, oracle, excess = workload["engine"], workload["oracle"], workload["excess"]
        label = f"{name} ({workload['rules']:,} rules)"
        lines.append(
            f"{label + ', engine':28}{engine['round_trips']:>13.3f}{engine['models']:>9.3f}{engine['features']:>10.1f}"
            f"   round trips {excess['round_trips']}, models {excess['models']} of {workload['requests']}"
        )
        lines.append(
            f"{label + ', oracle':28}{oracle['round_trips']:>13.3f}{oracle['models']:>9.3f}{oracle['features']:>10.1f}"
        )
    lines.append("targets:")
    lines.extend(target.line() for target in targets(result))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer users and requests")
    parser.add_argument("--redis", metavar="URL", help="Redis (default: as bench.serve)")
    parser.add_argument("--db", type=int, default=serve.DEFAULT_DB, help="the database to seed and empty (not 0)")
    args = parser.parse_args()
    print(report(run(args.quick, args.redis, args.db, progress=lambda message: print(f"... {message}", flush=True))))


if __name__ == "__main__":
    main()
