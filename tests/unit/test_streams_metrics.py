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


def test_thread_cpu_is_reported_per_python_thread_name_with_what_it_burnt():
    """``ThreadCpu``: a thread that burns 0.2 s of CPU shows under its own name with about
    that much; one that only waits shows under its name with next to none."""
    import threading
    import time

    done, idle_done = threading.Event(), threading.Event()

    def burn():
        end = time.thread_time() + 0.2
        while time.thread_time() < end:
            pass
        done.set()
        idle_done.wait(10)  # stays alive until it is read

    burner = threading.Thread(target=burn, name="burner")
    sleeper = threading.Thread(target=idle_done.wait, args=(10,), name="sleeper")
    burner.start()
    sleeper.start()
    try:
        assert done.wait(10)
        seconds = {s.labels["thread"]: s.value for family in metrics.ThreadCpu().collect()
                   for s in family.samples if s.name == "sentinel_thread_cpu_seconds_total"}
    finally:
        idle_done.set()
        burner.join(10)
        sleeper.join(10)
    assert 0.15 <= seconds["burner"] <= 1.0
    assert seconds["sleeper"] < 0.05
    assert "MainThread" in seconds


def test_threads_are_grouped_by_python_name_else_kernel_name():
    assert metrics.thread_group("MainThread", "python") == "MainThread"
    assert metrics.thread_group("entity-replica", "python") == "entity-replica"
    assert metrics.thread_group("asyncio_0", "python") == "asyncio-to-thread"
    assert metrics.thread_group("asyncio_12", "python") == "asyncio-to-thread"
    assert metrics.thread_group("Thread-31 (process_request_thread)", "python") == \
        "process_request_thread"
    assert metrics.thread_group("Thread-4", "python") == "Thread-4"
    assert metrics.thread_group(None, "rdk:broker1") == "librdkafka"
    assert metrics.thread_group(None, "rdk:main") == "librdkafka"
    assert metrics.thread_group(None, "jemalloc_bg") == "jemalloc_bg"
