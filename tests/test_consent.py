"""Attribute declarations, and consent by construction: what a user who declined never meets.

For a user without consent, rules that read behavioural features, models or
user attributes not declared ``public`` are removed in stage 0: none of their
features is fetched, no model runs, and nothing about the user is written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
import rulegen
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tailor
from tailor.compiler.check import check
from tailor.compiler.features import FeatureKind, FeatureRef
from tailor.dsl.diagnostics import Severity, render
from tailor.dsl.formatter import format_text
from tailor.dsl.parser import parse, parse_source
from tailor.dsl.source import Source
from tailor.runtime.consent import ConsentGate, made_without_consent
from tailor.runtime.decision_record import DecisionRecord
from tailor.runtime.events import Event
from tailor.runtime.memory_store import MemoryStore
from tailor.runtime.redis_store import RedisStore
from tailor.runtime.ruleset_loader import lint_path
from tailor.runtime.service import DecisionService, Served

# --- attribute declarations ------------------------------------------------------------


def problems(text: str) -> list:
    _program, found = check([parse(text, "shop.rules")], "shop")
    return found


def test_declarations_parse_and_format_in_place() -> None:
    text = (
        "attribute user.tier text\n"
        "content attribute = {}\n"  # still a name where no attribute follows
        "attribute user.age number\n"
        "segment old = user.age > 60\n"
        "rule attribute when old then show attribute in attribute\n"
        "attribute user.country text public\n"
        "attribute context.page text\n"
    )
    module, found = parse_source(Source("shop.rules", text))
    assert found == []
    declared = [d for d in module.declarations if type(d).__name__ == "AttributeDecl"]
    assert [(f"{d.attribute.scope}.{d.attribute.name}", d.type.name, d.public) for d in declared] == [
        ("user.tier", "text", False),
        ("user.age", "number", False),
        ("user.country", "text", True),
        ("context.page", "text", False),
    ]
    formatted = format_text(text)
    lines = formatted.splitlines()
    # fmt sorts nothing: each declaration stays where it was written
    assert lines.index("attribute user.tier text") < lines.index("attribute user.age number")
    assert lines.index("attribute user.age number") < lines.index("segment old = user.age > 60")
    assert lines[-2:] == ["attribute user.country text public", "attribute context.page text"]
    assert format_text(formatted) == formatted


def test_a_use_that_conflicts_with_the_declaration_points_at_both() -> None:
    found = problems('content c = {}\nrule r when user.age == "old" then show c\nattribute user.age number\n')
    assert [d.message for d in found] == [
        'cannot compare a number with a string: user.age is a number but "old" is a string'
    ]
    (note,) = found[0].related
    assert (note.message, note.line, note.column) == ("user.age is declared as a number here", 3, 11)
    assert "attribute user.age number" in render(found[0])


def test_a_declared_type_wins_over_the_first_use() -> None:
    """Without the declaration, the first use would make user.code a number, and the second use the error."""
    text = 'content c = {}\nwhen user.code > 3 then show c\nwhen user.code == "x" then show c\n'
    assert [d.line for d in problems(text)] == [3]
    assert [d.line for d in problems(text + "attribute user.code text\n")] == [2]


def test_undeclared_attributes_keep_inference() -> None:
    program, found = check([parse('content c = {}\nwhen user.tier == "gold" then show c\n', "a.rules")], "a")
    assert found == []
    assert str(program.attribute_types["user.tier"]) == "string"
    assert "user.tier" in program.inferred_at and program.declared == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("attribute user.age numbr\n", "unknown type 'numbr'"),
        ("attribute user.age number\nattribute user.age text\n", "user.age is already declared"),
        ("attribute account.age number\n", "unknown attribute scope 'account'"),
    ],
)
def test_bad_declarations_are_errors(text: str, message: str) -> None:
    assert [d.message for d in problems(text)] == [message]


def test_a_misspelt_public_is_a_syntax_error() -> None:
    _module, found = parse_source(Source("a.rules", "attribute user.country text publc\n"))
    assert [d.message for d in found] == ["expected 'public' or the end of the declaration, found 'publc'"]


RULES = """\
attribute user.country text public
attribute context.page text
content a = {"id": "a"}
content b = {"id": "b"}
content d = {"id": "d"}
content e = {"id": "e"}
segment fan = views("Electronics", 24h) > 2
rule by_views when fan then show a in hero priority 5
rule by_tier when user.tier == "gold" then show b in hero priority 4
rule by_country when user.country == "FR" then show d in hero priority 3
rule capped when context.page == "home" then show b in hero priority 2 cap 3 per 24h
rule by_page when context.page == "home" then show a in hero
default show d in hero
rule only_personal when user.tier == "gold" then show a in side
default show e in side
"""


def test_lint_suggests_declarations_and_says_what_users_without_consent_see(tmp_path: Path) -> None:
    (tmp_path / "shop.rules").write_text(RULES)
    found = lint_path(tmp_path)
    assert all(d.severity is Severity.NOTE for d in found)
    by_code = {(d.code, d.message) for d in found}
    assert (
        "undeclared-attribute",
        "user.tier is text only because of how it is used here: declare it to fix its type",
    ) in by_code
    assert (
        "without-consent",
        "without consent, slot 'hero' shows what rules 'by_country', 'by_page' choose, else 'd' (its default);"
        " rules 'by_views', 'by_tier', 'capped' need consent and are skipped",
    ) in by_code
    assert (
        "without-consent",
        "without consent, slot 'side' shows 'e' (its default); rule 'only_personal' needs consent and is skipped",
    ) in by_code
    assert not any("context.page" in d.message or "user.country" in d.message for d in found)  # declared


# --- consent in decisions ----------------------------------------------------------------


class RecordingStore(MemoryStore):
    """A memory store that remembers every feature asked of it and every write."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[FeatureRef] = []
        self.writes: list[str] = []

    def fetch_now(self, user_id: str, features: Sequence[FeatureRef], at: float | None = None, *, consent=None):
        values = super().fetch_now(user_id, features, at, consent=consent)
        declined = consent is not None and values.get(consent.text) is False
        self.asked.extend(consent.allowed(features) if declined else features)
        return values

    async def record(self, events, now=None):
        self.writes.append("record")
        return await super().record(events, now)

    async def keep_decisions(self, joins, keep, *, impressions=False):
        self.writes.append("keep_decisions")
        return await super().keep_decisions(joins, keep, impressions=impressions)

    async def expose(self, exposures):
        self.writes.append("expose")
        return await super().expose(exposures)


def _engine(text: str = RULES) -> tuple[tailor.Engine, RecordingStore]:
    store = RecordingStore()
    store.set_profile_now("u", {"tier": "gold", "country": "FR"})
    store.record_now([Event("u", "view", "Electronics") for _ in range(3)])
    return tailor.Engine(tailor.loads(text, name="shop"), store), store


def test_without_consent_personal_rules_are_skipped_and_their_features_not_fetched() -> None:
    engine, store = _engine()
    assert engine.decide("u", {"page": "home"}).slots["hero"].rule == "by_views"
    store.asked.clear()
    decision = engine.decide("u", {"page": "home"}, consent=False)
    assert decision.slots["hero"].rule == "by_country"  # a public attribute still personalizes
    assert decision.slots["side"].content == "e"
    assert {ref.text for ref in store.asked} == {"user.country"}
    assert decision.fetched == ("user.country",)


def test_explain_says_skipped_needs_consent_per_rule() -> None:
    engine, _store = _engine()
    explained = engine.explain("u", {"page": "home"}, consent=False)
    hero = explained.slots["hero"]
    assert [(c.rule, c.outcome) for c in hero.candidates] == [
        ("by_views", "needs_consent"),
        ("by_tier", "needs_consent"),
        ("by_country", "won"),
    ]
    assert hero.candidates[0].reason == 'skipped: needs consent (reads views("Electronics", 24h))'
    assert "skipped: needs consent" in explained.render()


def test_a_request_that_consents_is_decided_as_before() -> None:
    engine, _store = _engine()
    assert engine.decide("u", {"page": "home"}, consent=True) == engine.decide("u", {"page": "home"})


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        return MemoryStore()
    url = request.getfixturevalue("redis_url")
    return RedisStore(url, prefix=request.getfixturevalue("redis_prefix"))


PERSONAL = [
    FeatureRef(FeatureKind.COUNT, 'views("Electronics", 24h)', "view", "Electronics", 86400.0),
    FeatureRef(FeatureKind.PROFILE, "user.tier", name="tier"),
]
PUBLIC = FeatureRef(FeatureKind.PROFILE, "user.country", name="country")
GATE = ConsentGate("consent", frozenset({"user.country"}))


def test_the_store_reads_the_consent_attribute_first(store: Any) -> None:
    async def run() -> list[dict[str, Any]]:
        await store.set_profile("yes", {"tier": "gold", "country": "FR"})
        await store.set_profile("no", {"tier": "gold", "country": "FR", "consent": False})
        await store.record([Event(user, "view", "Electronics") for user in ("yes", "no")])
        answers = [await store.fetch(user, [*PERSONAL, PUBLIC], consent=GATE) for user in ("yes", "no", "nobody")]
        trips = store.round_trips
        await store.fetch("no", [*PERSONAL, PUBLIC], consent=GATE)
        assert store.round_trips == trips + 1  # the gate costs no round trip
        answers.append(await store.declined(["yes", "no", "nobody"], "consent"))
        await store.close()
        return answers

    yes, no, nobody, declined = asyncio.run(run())
    assert yes == {'views("Electronics", 24h)': 1, "user.tier": "gold", "user.country": "FR"}
    assert no == {"user.consent": False, "user.country": "FR"}
    assert nobody == {'views("Electronics", 24h)': 0}
    assert declined == {"no"}


def test_redis_reads_no_personal_key_for_a_user_who_declined(redis_url: str, redis_prefix: str) -> None:
    """MONITOR shows every command a script runs: for the user who declined, only public attributes are read."""
    store = RedisStore(redis_url, prefix=redis_prefix)

    async def prepare() -> None:
        await store.set_profile("no", {"tier": "gold", "country": "FR", "consent": False})
        await store.record([Event("no", "view", "Electronics")])
        await store.close()

    asyncio.run(prepare())
    monitor_client = redis.Redis.from_url(redis_url)
    with monitor_client.monitor() as monitor:
        store.fetch_now("no", [*PERSONAL, PUBLIC], consent=GATE)
        store._blocking_redis().echo("end of the gated fetch")
        commands = []
        for entry in monitor.listen():
            if entry["command"].startswith("ECHO"):
                break
            commands.append(entry["command"])
    monitor_client.close()
    reads = [c for c in commands if c.startswith(("HGET", "HMGET", "HGETALL"))]
    assert len(reads) == 2, commands
    assert reads[0].startswith("HGET") and reads[0].endswith(" p:consent")  # first, the consent attribute
    assert reads[1].startswith("HMGET") and reads[1].endswith(" p:country")  # then the public attribute alone
    assert not any(" c:" in command or " l:" in command or " p:tier" in command for command in reads)


# --- the service: consent from the request and from the profile ---------------------------


def _service(tmp_path: Path, store: MemoryStore, text: str = RULES, **options: Any) -> DecisionService:
    (tmp_path / "shop.rules").write_text(text)
    service = DecisionService(tmp_path, store, **options)
    service.open()
    return service


def test_the_service_skips_personal_rules_and_writes_nothing(tmp_path: Path) -> None:
    store = RecordingStore()
    store.set_profile_now("u", {"tier": "gold", "country": "FR"})
    store.set_profile_now("v", {"tier": "gold", "country": "FR", "consent": False})
    service = _service(tmp_path, store, consent_attribute="consent")
    published: list[DecisionRecord] = []
    service.listen(published.append)

    async def run() -> None:
        for user, consent in (("u", False), ("v", None), ("v", True), ("u", None)):
            decided = await service.decide(user, {"page": "home"}, consent=consent)
            declined = user == "v" or consent is False
            assert decided.outcomes.consent is not declined
            assert made_without_consent(service.new_decision_id(decided.outcomes.consent)) is declined
            service.publish(decided, "id", user, {"page": "home"}, None)
            if declined:
                assert decided.outcomes.decision.slots["hero"].rule == "by_country"
        result = await service.record([Event("v", "view", "x"), Event("u", "view", "x")], [False, True])
        assert (result.accepted, result.dropped_no_consent) == (0, 2)
        result = await service.record([Event("v", "view", "x"), Event("u", "view", "x")])
        assert (result.accepted, result.dropped_no_consent) == (1, 1)

    asyncio.run(run())
    assert [record.user_id for record in published] == ["u"]  # only the decision with consent
    assert store.writes == ["record"]  # the one event of the user who consents
    assert not any(ref.text in ("user.tier", 'views("Electronics", 24h)') for ref in store.asked[:2])
    text = service.metrics.exposition()[0].decode()
    assert 'tailor_no_consent_total{kind="decisions"} 3.0' in text
    assert 'tailor_no_consent_total{kind="events"} 3.0' in text


def test_a_consent_that_cannot_be_read_counts_as_declined(tmp_path: Path) -> None:
    class Broken(MemoryStore):
        async def fetch(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            raise ConnectionError("down")

    service = _service(tmp_path, Broken(), consent_attribute="consent")
    decided = asyncio.run(service.decide("u", {"page": "home"}))
    assert decided.outcomes.consent is False and decided.outcomes.decision.degraded


# --- the guarantee, on generated rulesets -------------------------------------------------


class RecordingModels:
    """Stands for the model runner: records every inference asked of it."""

    def __init__(self) -> None:
        self.runs: list[str] = []

    def for_decision(self, user_id: str | None, deadline: float | None = None) -> Any:
        def run(name: str, values: Any) -> float:
            self.runs.append(name)
            return 0.9

        return run


_TYPE_WORDS = {"number": "number", "string": "text", "bool": "boolean", "duration": "duration"}


@st.composite
def declared_rulesets(draw: Any) -> tuple[str, dict[str, Any]]:
    """A generated ruleset, with some of its user attributes declared, public or not, and a request's context."""
    generated = draw(rulegen.rulesets())
    lines = [generated.text]
    for text, kind in sorted(generated.program.attribute_types.items()):
        if text.startswith("user.") and kind.name in _TYPE_WORDS and draw(st.booleans()):
            lines.append(f"attribute {text} {_TYPE_WORDS[kind.name]}" + (" public" if draw(st.booleans()) else ""))
    return "\n".join(lines) + "\n", draw(rulegen.requests(generated)).context


PROFILE = {"tier": "gold", "country": "FR", "age": 30, "vip": True, "score": 0.5, "tenure": 86400 * 40}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=declared_rulesets())
def test_without_consent_nothing_personal_is_fetched_run_or_written(case: tuple[str, dict[str, Any]]) -> None:
    text, context = case
    ruleset = tailor.loads(text, name="shop")
    public = ruleset.plan.public_attributes
    # the request way: consent false
    store = RecordingStore()
    store.set_profile_now("u", PROFILE)
    store.record_now([Event("u", kind, key) for kind in ("view", "click", "purchase") for key in ("Shoes", None)])
    engine = tailor.Engine(ruleset, store)
    models = RecordingModels()
    engine._models = models  # every inference goes through it
    decision = engine.decide("u", context, consent=False)
    engine.explain("u", context, consent=False)
    personal = [ref.text for ref in store.asked if ref.kind is not FeatureKind.PROFILE or ref.text not in public]
    assert personal == [], f"fetched {personal} for a user without consent\n{text}"
    assert models.runs == [] and decision.models_run == ()
    # the profile way: the consent attribute, read by the store first
    store.asked.clear()
    store.set_profile_now("u", {"consent": False})
    served = Served.of(ruleset)
    service = DecisionService(Path("unused"), store, consent_attribute="consent")
    service.install(served)
    written: list[DecisionRecord] = []
    service.listen(written.append)

    async def run() -> None:
        decided = await service.decide("u", context)
        service.publish(decided, service.new_decision_id(decided.outcomes.consent), "u", context, None)
        assert decided.outcomes.consent is False
        assert decided.outcomes.decision.models_run == ()
        result = await service.record([Event("u", "view", "Shoes")])
        assert result.dropped_no_consent == 1

    asyncio.run(run())
    personal = [ref.text for ref in store.asked if ref.kind is not FeatureKind.PROFILE or ref.text not in public]
    assert personal == [], f"the store read {personal} for a user whose consent attribute is false\n{text}"
    assert written == [] and store.writes == []


def test_consent_false_is_a_request_field_the_schema_checks() -> None:
    from pydantic import ValidationError

    from tailor.runtime.http.schemas import DecideRequest

    assert DecideRequest(user_id="u", consent=False).consent is False
    with pytest.raises(ValidationError):
        DecideRequest(user_id="u", consent="no")


def test_segments_inline_into_consent() -> None:
    """A rule reading a segment that reads views() needs consent; one reading context alone does not."""
    engine, _store = _engine()
    plan = engine.ruleset.plan
    from tailor.compiler.consent import ConsentPlan

    consent = ConsentPlan.of(plan)
    assert set(consent.rules) == {"by_views", "by_tier", "capped", "only_personal"}
    assert consent.rules["capped"] == ('count("impression", "b", 24h)',)


# --- over HTTP ------------------------------------------------------------------------------


@pytest.fixture
def http(tmp_path: Path, store: Any) -> Any:
    from fastapi.testclient import TestClient

    from tailor.runtime.http import create_app

    (tmp_path / "shop.rules").write_text(RULES)
    service = DecisionService(tmp_path, store, consent_attribute="consent")
    service.open()
    with TestClient(create_app(service, watch=False)) as client:
        yield client


def test_over_http_decisions_events_and_feedback_without_consent(http: Any) -> None:
    assert http.put("/v1/users/v", json={"attributes": {"tier": "gold", "consent": False}}).status_code == 200
    assert http.put("/v1/users/u", json={"attributes": {"tier": "gold"}}).status_code == 200
    declined = http.post("/v1/decide", json={"user_id": "u", "context": {"page": "home"}, "consent": False}).json()
    assert declined["consent"] is False and declined["decision_id"].endswith("-nc")
    assert declined["slots"]["side"]["content"] == "e"  # only_personal was skipped: the default
    by_profile = http.post("/v1/decide", json={"user_id": "v", "context": {"page": "home"}}).json()
    assert by_profile["consent"] is False and by_profile["slots"]["side"]["content"] == "e"
    consented = http.post("/v1/decide", json={"user_id": "u", "context": {"page": "home"}}).json()
    assert "consent" not in consented and consented["slots"]["side"]["rule"] == "only_personal"
    explained = http.post("/v1/explain", json={"user_id": "v", "context": {}}).json()
    side = explained["explain"]["slots"]["side"]["candidates"]
    assert [(c["rule"], c["outcome"], c["reason"]) for c in side] == [
        ("only_personal", "needs_consent", "skipped: needs consent (reads user.tier)")
    ]
    events = http.post(
        "/v1/events",
        json={
            "events": [
                {"user_id": "u", "type": "view", "key": "Electronics"},
                {"user_id": "u", "type": "view", "key": "Electronics", "consent": False},
                {"user_id": "v", "type": "view", "key": "Electronics"},
            ]
        },
    ).json()
    assert (events["accepted"], events["dropped_no_consent"]) == (1, 2)
    feedback = http.post(
        "/v1/feedback",
        json={
            "items": [
                {"decision_id": declined["decision_id"], "slot": "side", "type": "click"},
                {"decision_id": consented["decision_id"], "slot": "side", "type": "click", "consent": False},
                {"decision_id": consented["decision_id"], "slot": "side", "type": "click"},
            ]
        },
    ).json()
    assert (feedback["accepted"], feedback["dropped_no_consent"]) == (1, 2)
    assert feedback["results"] == [{"index": 0, "status": "no_consent"}, {"index": 1, "status": "no_consent"}]
    # the user who consented declines later: feedback on their earlier decision is dropped too
    http.put("/v1/users/u", json={"attributes": {"consent": False}})
    later = http.post(
        "/v1/feedback",
        json={"items": [{"decision_id": consented["decision_id"], "slot": "side", "type": "conversion", "value": 3}]},
    ).json()
    assert later["dropped_no_consent"] == 1
    assert 'tailor_no_consent_total{kind="feedback"} 3.0' in http.get("/metrics").text


@pytest.mark.parametrize("given", ["consent", "context.consent", "user.", "user.a-b"])
def test_serve_refuses_a_consent_attribute_that_is_not_a_profile_attribute(tmp_path: Path, given: str) -> None:
    import subprocess
    import sys

    (tmp_path / "shop.rules").write_text(RULES)
    result = subprocess.run(
        [sys.executable, "-m", "tailor.cli", "serve", "shop.rules", "--consent-attribute", given],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--consent-attribute: the consent attribute is a profile attribute, like user.consent" in result.stderr


def test_serve_passes_the_consent_attribute_to_the_service(tmp_path: Path) -> None:
    from tailor.runtime.launch import ServeOptions, build_app

    (tmp_path / "shop.rules").write_text(RULES)
    app = build_app(ServeOptions(path=str(tmp_path), consent_attribute="user.opted_in"))
    assert app.state.service.consent_attribute == "opted_in"


def test_tailor_explain_no_consent_shows_the_skipped_rules(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "shop.rules").write_text(RULES)
    argv = [sys.executable, "-m", "tailor.cli", "explain", "shop.rules", "--context", "page=home", "--slot", "side"]
    argv += ["--feature", 'user.tier="gold"']
    consented = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    declined = subprocess.run([*argv, "--no-consent"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert "side: a  (by rule only_personal)" in consented.stdout
    assert "side: e  (by the slot's default)" in declined.stdout
    assert "only_personal (priority 0) -> a: skipped: needs consent (reads user.tier)" in declined.stdout
