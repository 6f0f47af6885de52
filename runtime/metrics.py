"""Prometheus metrics of the decision service, in a registry of its own.

Each service gets its own ``CollectorRegistry`` so that several apps can live
in one process (tests build many) without clashing over global names.

The per-decision metrics are the hottest code here, so they are plain
Python counters and bucket lists, written without locks by the event loop
(the only thread that decides) and read only when Prometheus scrapes,
through custom collectors; the scrape handler runs on the same loop.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from .decision_record import DEFAULT_RULE as RECORDED_DEFAULT  # "default": join records' and KPIs' name
from .feedback import Outcome
from .memory_store import EVICTIONS

if TYPE_CHECKING:
    from .model_report import ModelsReport

STAGES = ("plan", "fetch", "finish", "total")
# Decisions take tens of microseconds without a store and a few milliseconds with one.
LATENCY_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)
DEFAULT_RULE = "(default)"  # the slot's default was served
NO_RULE = "(nothing)"  # nothing was served

#: Label values for the ruleset currently served: (name, version), or None.
RulesetInfo = Callable[[], tuple[str, str] | None]
#: Seconds since hot reload last found the files in step with what is served, or None.
ReloadCheckAge = Callable[[], float | None]
#: Model predictions (computed, taken from the cache) by the versions the service keeps.
Predictions = Callable[[], tuple[int, int]]


class _Live(Collector):
    """Values read at scrape time: decisions by slot and rule, store round trips and evictions, the ruleset."""

    def __init__(self, decisions: Tally, round_trips: Callable[[], int], ruleset: RulesetInfo):
        self._decisions = decisions
        self._round_trips = round_trips
        self._ruleset = ruleset

    def collect(self) -> Iterator[Metric]:
        decisions = CounterMetricFamily(
            "tailor_decisions", "Slot decisions by slot and the rule that won.", labels=("slot", "rule")
        )
        for (slot, rule), count in list(self._decisions.items()):
            decisions.add_metric((slot, rule), count)
        yield decisions
        yield CounterMetricFamily(
            "tailor_store_round_trips", "Round trips made to the feature store.", value=self._round_trips()
        )
        yield CounterMetricFamily(
            "tailor_memory_store_evicted_users",
            "Users the memory store dropped, least recently written first, to stay within its max_users.",
            value=EVICTIONS.users,
        )
        info = GaugeMetricFamily("tailor_ruleset", "The ruleset being served.", labels=("name", "version"))
        current = self._ruleset()
        if current is not None:
            info.add_metric(current, 1)
        yield info


class _Feedback(Collector):
    """Feedback counted into the KPIs, by slot and rule (never by user), read at scrape time."""

    def __init__(self, counted: Tally):
        self._counted = counted

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "tailor_feedback_counted",
            "Feedback counted into the KPIs (impressions, clicks, conversions) by slot, rule and measure.",
            labels=("slot", "rule", "measure"),
        )
        for (slot, rule, measure), count in list(self._counted.items()):
            family.add_metric((slot, DEFAULT_RULE if rule == RECORDED_DEFAULT else rule, measure), count)
        yield family


class _ReloadCheck(Collector):
    """The age of the newest reload check, read at scrape time: alert when it keeps growing."""

    def __init__(self, age: ReloadCheckAge):
        self._age = age

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "tailor_reload_check_age_seconds",
            "Seconds since hot reload last confirmed the files on disk are in step with the version served.",
        )
        age = self._age()
        if age is not None:
            family.add_metric((), age)
        yield family


class _Predictions(Collector):
    """Model predictions computed or served from the cache, read at scrape time."""

    def __init__(self, predictions: Predictions):
        self._predictions = predictions

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "tailor_model_predictions",
            "Model predictions by the versions kept for serving and rollback: computed, or taken from the cache.",
            labels=("source",),
        )
        computed, cached = self._predictions()
        family.add_metric(("computed",), computed)
        family.add_metric(("cache",), cached)
        yield family


class _Models(Collector):
    """The served models' drift, live AUC and calibration, as the last models report computed them.

    The scrape handler refreshes the report from the store first (``ModelMonitor.report``).
    """

    GAUGES = (
        ("psi", "tailor_model_psi", "Population stability index of the live scores against training."),
        ("js", "tailor_model_js", "Jensen-Shannon distance (base 2) of the live scores against training."),
        ("auc", "tailor_model_auc", "Live AUC of the score for a click, from feedback."),
        ("calibration_error", "tailor_model_calibration_error", "Mean |predicted - observed CTR| by decile."),
        ("scored", "tailor_model_live_scores", "Live scores counted since the model version was first served."),
    )

    def __init__(self, metrics: Metrics):
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        report = self._metrics.models_report
        for attribute, name, documentation in self.GAUGES:
            family = GaugeMetricFamily(name, documentation, labels=("model", "version"))
            for model in report.models if report is not None else ():
                value = getattr(model, attribute)
                if value is not None:
                    family.add_metric((model.name, model.version), float(value))
            yield family
        bands = GaugeMetricFamily(
            "tailor_model_drift_band",
            "1 for the drift band each model is in: ok, warn, alert, none.",
            labels=("model", "band"),
        )
        for model in report.models if report is not None else ():
            bands.add_metric((model.name, model.band.value), 1)
        yield bands


class LoopHistogram:
    """One label set of a latency histogram, written only by the event loop's thread.

    The request path pays a bisect and two additions, with no lock: a
    prometheus-client ``Histogram.observe`` takes a lock and walks the
    buckets, several times the cost, four times per decision.
    """

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS):
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        buckets = []
        running = 0
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += count
            buckets.append((floatToGoString(bound), running))
        return buckets


class _Stages(Collector):
    """The stage histograms, read at scrape time."""

    def __init__(self, stages: Mapping[str, LoopHistogram]):
        self._stages = stages

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            "tailor_decision_seconds",
            "Decision latency by stage: plan (stage 0), fetch (the store), finish (stages 1 and 2), total.",
            labels=("stage",),
        )
        for stage, histogram in self._stages.items():
            family.add_metric((stage,), histogram.cumulative(), histogram.sum)
        yield family


class LogCounts:
    """What became of served decisions' records, counted by the event loop without locks."""

    __slots__ = ("dropped", "failed", "queued", "sampled_out", "sink_errors", "written")

    def __init__(self) -> None:
        self.written = 0  # records the sink accepted
        self.dropped = 0  # records refused because the queue was full
        self.sampled_out = 0  # records --log-sample left out
        self.failed = 0  # records lost with a batch the sink could not write
        self.sink_errors = 0  # batches the sink could not write
        self.queued = 0  # records waiting in the queue now


class _DecisionLog(Collector):
    """The decision log's counts, read at scrape time."""

    def __init__(self, counts: LogCounts):
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        counts = self._counts
        records = CounterMetricFamily(
            "tailor_decision_log_records",
            "Served decisions' records by what became of them: written, dropped (the queue was full), "
            "sampled_out (--log-sample), failed (lost with a batch the sink could not write).",
            labels=("outcome",),
        )
        for outcome in ("written", "dropped", "sampled_out", "failed"):
            records.add_metric((outcome,), getattr(counts, outcome))
        yield records
        yield CounterMetricFamily(
            "tailor_decision_log_sink_errors",
            "Batches of records the decision log's sink could not write.",
            value=counts.sink_errors,
        )
        yield GaugeMetricFamily(
            "tailor_decision_log_queued", "Records waiting in the decision log's queue.", value=counts.queued
        )


class Metrics:
    """The service's metric objects; label children are resolved once, here."""

    def __init__(
        self,
        round_trips: Callable[[], int] = lambda: 0,
        ruleset: RulesetInfo = lambda: None,
        *,
        reload_check_age: ReloadCheckAge = lambda: None,
        predictions: Predictions = lambda: (0, 0),
    ):
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        registry.register(_ReloadCheck(reload_check_age))
        registry.register(_Predictions(predictions))
        #: (slot, rule or DEFAULT_RULE or NO_RULE) -> decisions; incremented on the request path
        self.decisions: Tally[tuple[str, str]] = Tally()
        registry.register(_Live(self.decisions, round_trips, ruleset))
        stages = {name: LoopHistogram() for name in STAGES}
        registry.register(_Stages(stages))
        self.plan, self.fetch, self.finish, self.total = (stages[name] for name in STAGES)
        degraded = Counter(
            "tailor_degraded_decisions",
            "Decisions made with some values unknown: the store timed out or failed, or a model did.",
            ("reason",),
            registry=registry,
        )
        self.degraded_timeout = degraded.labels("timeout")
        self.degraded_error = degraded.labels("error")
        self.degraded_model = degraded.labels("model")  # a model failed or the deadline had passed
        self.model_calls = Counter("tailor_model_calls", "Model predictions read.", ("model",), registry=registry)
        reloads = Counter("tailor_reloads", "Ruleset reloads by outcome.", ("outcome",), registry=registry)
        self.reloads = {outcome: reloads.labels(outcome) for outcome in ("ok", "failed", "unchanged", "rollback")}
        self.compiling = Gauge(
            "tailor_reload_compiling",
            "1 while hot reload's worker process compiles a new version (a compile that never ends stays at 1 "
            "until the reload timeout kills it).",
            registry=registry,
        )
        events = Counter("tailor_events", "Behavioural events received, by outcome.", ("outcome",), registry=registry)
        self.events = {
            outcome: events.labels(outcome) for outcome in ("accepted", "duplicate", "conflict", "expired", "rejected")
        }
        self.decision_log = LogCounts()  # all zero while the log is off
        registry.register(_DecisionLog(self.decision_log))

        feedback = Counter(
            "tailor_feedback_items", "Feedback items received, by outcome.", ("outcome",), registry=registry
        )
        self.feedback_items = {outcome: feedback.labels(outcome) for outcome in (o.value for o in Outcome)}
        #: (slot, rule, measure) -> feedback items counted into the KPIs
        self.feedback_counted: Tally[tuple[str, str, str]] = Tally()
        registry.register(_Feedback(self.feedback_counted))
        served = Counter(
            "tailor_served_records",
            "Served decisions written for feedback and KPIs (kept), or not: the store failed, the queue was full.",
            ("outcome",),
            registry=registry,
        )
        self.served_records = {outcome: served.labels(outcome) for outcome in ("kept", "failed", "dropped")}
        erasures = Counter(
            "tailor_erasures",
            "Users erased: asked of this process (request), or by another through Redis (notice).",
            ("origin",),
            registry=registry,
        )
        self.erasures = {origin: erasures.labels(origin) for origin in ("request", "notice")}
        no_consent = Counter(
            "tailor_no_consent",
            "For users without consent: decisions made without personal data, events and feedback items dropped.",
            ("kind",),
            registry=registry,
        )
        self.no_consent = {kind: no_consent.labels(kind) for kind in ("decisions", "events", "feedback")}
        # Set at scrape time from the store's heartbeats (fleet.py): every process reports the same fleet.
        self.fleet_processes = Gauge(
            "tailor_fleet_processes",
            "Server processes whose heartbeats the store holds, this one included.",
            registry=registry,
        )
        self.fleet_agrees = Gauge(
            "tailor_fleet_agrees",
            "1 when every server process sharing the store serves the same ruleset version and model files.",
            registry=registry,
        )
        self.models_report: ModelsReport | None = None  # set by ModelMonitor.report: what the model gauges show
        registry.register(_Models(self))
        from .gc_pauses import GcPauses  # here, not at the top: it imports this module

        self.gc_pauses = GcPauses()  # timing only while a server runs: its app installs it
        registry.register(self.gc_pauses)

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
