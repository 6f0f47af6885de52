"""Prometheus metrics of one ``tailor ingest`` process, in a registry of its own.

Counted by the consumer loop; served by a small HTTP server (prometheus
client's own, on a thread) at ``/metrics`` of ``--metrics-port``. The lag and
pending gauges are the group's, as the stream reports them: every ingester
of the group shows the same values.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .feedback import Outcome

EVENT_OUTCOMES = ("accepted", "duplicate", "conflict", "expired", "no_consent")
#: seconds a batch takes from read to acknowledgement: about a millisecond per 100 events on a near store
BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class IngestMetrics:
    """The ingester's metric objects; label children are resolved once, here."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        records = Counter(
            "tailor_ingest_records",
            "Stream records stored, by kind (event, feedback) and outcome (as POST /v1/events and /v1/feedback "
            "answer them), or dead_letter: refused, copied to the dead-letter stream with the reason.",
            ("kind", "outcome"),
            registry=registry,
        )
        self.events = {outcome: records.labels("event", outcome) for outcome in EVENT_OUTCOMES}
        self.feedback = {outcome.value: records.labels("feedback", outcome.value) for outcome in Outcome}
        self.dead_letters = records.labels("any", "dead_letter")
        self.acknowledged = Counter(
            "tailor_ingest_acknowledged", "Stream entries acknowledged: stored or dead-lettered.", registry=registry
        )
        self.store_failures = Counter(
            "tailor_ingest_store_failures",
            "Batches the store could not take: not acknowledged, retried after a pause.",
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "tailor_ingest_batch_seconds",
            "Seconds from a batch read to its acknowledgement.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.lag = Gauge(
            "tailor_ingest_lag",
            "Entries of the stream the group has not yet read (XINFO GROUPS lag); NaN when the stream cannot say.",
            registry=registry,
        )
        self.pending = Gauge(
            "tailor_ingest_pending",
            "Entries the group has read but not acknowledged (XINFO GROUPS pending).",
            registry=registry,
        )

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
