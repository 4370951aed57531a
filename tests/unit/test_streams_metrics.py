"""The worker's batch metrics: counted once per label and batch, the same samples as counted
once per decision."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from streams import metrics

pytestmark = pytest.mark.unit
BUCKETS = (5, 10, 25, 50, 100, 250)


def samples(metric) -> list[tuple[str, dict, float]]:
    return [
        (s.name, s.labels, s.value)
        for family in metric.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    ]


def test_observe_decisions_counts_as_one_update_per_decision(monkeypatch):
    registry = CollectorRegistry()
    made = {
        "DECISIONS": Counter("d", "t", ["decision"], registry=registry),
        "REVIEW_DECISIONS": Counter("r", "t", ["organizer"], registry=registry),
        "LATENCY": Histogram("l", "t", buckets=BUCKETS, registry=registry),
        "BATCH": Histogram("b", "t", buckets=(1, 5, 500), registry=registry),
    }
    for name, metric in made.items():
        monkeypatch.setattr(metrics, name, metric)
    verdicts = ["APPROVED", "MANUAL_REVIEW", "BLOCKED", "MANUAL_REVIEW", "REQUIRE_2FA"]
    decisions = [
        {
            "decision": verdicts[i % 5],
            "latency_ms": 3.7 * i,
            "organizer_id": [None, "org_a", "", "org_b"][i % 4],
        }
        for i in range(40)
    ]
    metrics.observe_decisions(decisions)
    metrics.observe_decisions(decisions[:3])

    expected = {
        "DECISIONS": Counter("d", "t", ["decision"], registry=None),
        "REVIEW_DECISIONS": Counter("r", "t", ["organizer"], registry=None),
        "LATENCY": Histogram("l", "t", buckets=BUCKETS, registry=None),
    }
    for batch in (decisions, decisions[:3]):
        for d in batch:  # what observe_decisions did before: one update per decision
            expected["DECISIONS"].labels(d["decision"]).inc()
            expected["LATENCY"].observe(d["latency_ms"])
            if d["decision"] == "MANUAL_REVIEW":
                expected["REVIEW_DECISIONS"].labels(d.get("organizer_id") or "unknown").inc()
    for name, metric in expected.items():
        assert by_labels(made[name]) == by_labels(metric)
    assert [s for s in samples(made["BATCH"]) if s[0] == "b_sum"] == [("b_sum", {}, 43.0)]


def by_labels(metric) -> dict:
    return {(name, tuple(sorted(labels.items()))): value for name, labels, value in samples(metric)}


def test_batch_age_is_its_oldest_timestamp_to_now(monkeypatch):
    """A batch's age: ``now`` minus its oldest Kafka timestamp; records without one (None, 0)
    ignored; a batch without any not observed; a timestamp ahead of ``now`` counts as 0."""
    registry = CollectorRegistry()
    age = Histogram("a", "t", buckets=(0.01, 0.1, 1.0), registry=registry)
    monkeypatch.setattr(metrics, "BATCH_AGE", age)
    metrics.observe_batch_age([100.25, None, 100.0, 0, 100.4], now=100.5)
    metrics.observe_batch_age([None, 0], now=100.5)
    metrics.observe_batch_age([101.0], now=100.5)
    got = {name: value for name, labels, value in samples(age)
           if name in ("a_count", "a_sum") or labels.get("le") == "0.01"}
    assert got == {"a_count": 2.0, "a_sum": 0.5, "a_bucket": 1.0}
