"""Prometheus metrics of the worker, served with its probes on METRICS_BIND:METRICS_WORKER_PORT
(``streams/health.py``)."""

from __future__ import annotations

import re
import threading
from collections import Counter as Tally

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from infra.process import thread_cpu_seconds

DECISIONS = Counter("sentinel_decisions_total", "Decisions emitted", ["decision"])
# The review queue's inflow (issue 13): MANUAL_REVIEW decisions, per organizer.
REVIEW_DECISIONS = Counter(
    "sentinel_review_decisions_total", "Decisions sent to manual review", ["organizer"]
)
DEAD_LETTERS = Counter("sentinel_dead_letters_total", "Records sent to a DLQ", ["topic"])
CONSUMED = Counter(
    "sentinel_records_consumed_total", "Records the agents took from a topic", ["topic"]
)
LATENCY = Histogram(
    "sentinel_decision_latency_ms", "Edge acceptance to decision, ms",
    buckets=(5, 10, 15, 25, 50, 100, 150, 250, 500, 1000, 2500, 5000),
)
BATCH = Histogram("sentinel_batch_size", "Purchases per scoring batch",
                  buckets=(1, 5, 10, 25, 50, 100, 250, 500))
# Where a scoring batch's wall time goes (streams/agents.py, streams/scoring.py): a batch
# pays fixed costs (rules, model, contributions) whatever its size, so at a steady rate the
# worker's batch cycle, hence the latency, is set by these. Wall time: a phase also counts
# the time other threads (entity replica, Kafka clients) held the interpreter meanwhile.
PHASE = Histogram(
    "sentinel_scoring_phase_seconds",
    "Wall time of each phase of a scoring batch: decode, entity_wait (the entity replica "
    "covering the batch), features, decide (rules, model, policy), send", ["phase"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
PHASES = {p: PHASE.labels(p) for p in ("decode", "entity_wait", "features", "decide", "send")}
# How old a scoring batch's oldest record is when the batch starts (its Kafka timestamp to
# then): the broker, Faust's fetch and delivery, and the batches before it. Beside the phases
# above it splits a decision's latency into the wait for its batch and the batch's own work
# (docs/measurements.md, "latency analyses": at 1 000 /s most of the p50 is this wait).
BATCH_AGE = Histogram(
    "sentinel_batch_age_seconds",
    "Age of a scoring batch's oldest record (Kafka timestamp) when the batch starts",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0),
)
ENTITY_WAIT_TIMEOUTS = Counter("sentinel_entity_wait_timeouts_total",
                               "Batches decided before the entity replica covered them")
OFFSET_GUARD_SEEKS = Counter(
    "sentinel_offset_guard_seeks_total",
    "Source partitions sought back by the offset guard (streams/faust_compat.py): records "
    "skipped by the fetcher (skipped), none delivered while records wait (stalled), a commit "
    "held by a record never processed (commit_held)", ["reason"])
REDELIVERED = Counter("sentinel_redelivered_purchases_total",
                      "Redelivered purchases already decided (skipped)")
REDELIVERY_READ_FAILURES = Counter(
    "sentinel_redelivery_read_failures_total",
    "Assignments whose decisions could not be read back (redeliveries decided again)")
PSI = Gauge("sentinel_feature_psi", "Population stability index vs training", ["feature"])
KL = Gauge("sentinel_feature_kl", "KL divergence vs training", ["feature"])
EXPIRED = Counter("sentinel_state_expired_total", "Table keys summarised or deleted by expiry",
                  ["table", "outcome"])
# 1 while the scoring path runs on its fallback because Redis (blocklists) is unreachable.
REDIS_FALLBACK = Gauge(
    "sentinel_scoring_redis_fallback", "1 while scoring runs without Redis (fallback), else 0"
)
REDIS_FALLBACK.set(0)


def thread_group(python_name: str | None, comm: str) -> str:
    """The name a thread's CPU is reported under: its Python name (the asyncio executor's
    ``asyncio_N`` together; a thread Python named ``Thread-N (target)`` by its target, e.g.
    the /metrics server's ``process_request_thread``), else, for a thread Python did not
    start, its kernel name (librdkafka's ``rdk:*`` together)."""
    if python_name is not None:
        if re.fullmatch(r"asyncio_\d+", python_name):
            return "asyncio-to-thread"
        unnamed = re.fullmatch(r"Thread-\d+ \((.+)\)", python_name)
        return unnamed.group(1) if unnamed else python_name
    return "librdkafka" if comm.startswith("rdk:") else comm


class ThreadCpu(Collector):
    """``sentinel_thread_cpu_seconds_total{thread}``: the worker's CPU time per thread, read
    from ``/proc/self/task`` at each scrape (``thread_group`` names them; a thread that ended
    takes its seconds with it). The GIL is one: at a steady rate the Python threads' sum is
    how busy the interpreter is, whatever the cores (``sentinel bench pipeline``'s
    ``cpu_us_per_purchase_by_thread``; docs/measurements.md, "latency analyses")."""

    def collect(self):
        names = {t.native_id: t.name for t in threading.enumerate()}
        totals: Tally[str] = Tally()
        for tid, (comm, seconds) in thread_cpu_seconds().items():
            totals[thread_group(names.get(tid), comm)] += seconds
        family = CounterMetricFamily("sentinel_thread_cpu_seconds",
                                     "CPU time of the worker's threads, by thread", labels=["thread"])
        for name, seconds in sorted(totals.items()):
            family.add_metric([name], seconds)
        yield family


REGISTRY.register(ThreadCpu())


def observe_batch_age(timestamps: list[float | None], now: float) -> None:
    """``BATCH_AGE`` of a batch whose records carry these Kafka timestamps (seconds since the
    epoch, as Faust gives them; None or 0 when a record has none), at ``now`` (``time.time()``).
    A batch with no timestamp is not observed; a clock ahead of ``now`` counts as 0."""
    known = [t for t in timestamps if t]
    if known:
        BATCH_AGE.observe(max(0.0, now - min(known)))


def observe_decisions(decisions: list[dict]) -> None:
    """A batch's decisions, counted per verdict (and organizer, for reviews) with one
    ``inc`` per label rather than per decision (each takes a lock), their latencies observed."""
    BATCH.observe(len(decisions))
    for verdict, n in Tally(d["decision"] for d in decisions).items():
        DECISIONS.labels(verdict).inc(n)
    reviews = Tally(d.get("organizer_id") or "unknown" for d in decisions
                    if d["decision"] == "MANUAL_REVIEW")
    for organizer, n in reviews.items():
        REVIEW_DECISIONS.labels(organizer).inc(n)
    for d in decisions:
        LATENCY.observe(d["latency_ms"])


def observe_drift(report: dict[str, dict[str, float]]) -> None:
    for feature, values in report.items():
        PSI.labels(feature).set(values["psi"])
        KL.labels(feature).set(values["kl"])


async def count_consumed(batches, prefix: str):
    """Pass ``take_events`` batches through, counting records per topic (registry name)."""
    async for events in batches:
        for topic, n in Tally(event.message.topic for event in events).items():
            CONSUMED.labels(topic.removeprefix(prefix)).inc(n)
        yield events

RULE_SHADOWED = Gauge("sentinel_rule_shadowed", "1 while a rule is in shadow mode (breaker)",
                      ["rule"])
RULE_TRIPS = Counter("sentinel_rule_breaker_trips_total", "Rules switched to shadow mode by the "
                     "blast-radius breaker", ["rule"])
