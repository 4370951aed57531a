"""The worker's operator endpoint on the real broker: /readyz answers 503 while purchases wait
(the oldest an hour old) and 200 once the worker caught up; /healthz answers from the event
loop; /metrics carries consumer lag per group and partition in records and seconds, records
consumed per topic, decisions per verdict and the wall time of each phase of a scoring
batch."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer

from infra import topics
from infra.observe import free_port
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from tests.conftest import app_id
from tests.support.http import sample, wait_for
from tests.support.kafka import Worker
from tests.support.records import purchase

pytestmark = pytest.mark.integration
HOUR_MS = 3_600_000


def _produce_aged(settings, records: list[dict], age_ms: int) -> None:
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.PURCHASES)
    producer = Producer(settings.kafka.producer_conf())
    name = topics.full_name(topics.PURCHASES, settings.kafka.topic_prefix)
    stamp = int(time.time() * 1000) - age_ms
    for record in records:
        producer.produce(name, codec.encode(record), record["wallet"], timestamp=stamp)
    assert producer.flush(30) == 0


def test_worker_is_not_ready_while_behind_and_ready_once_caught_up(settings, env, tmp_path):
    port = free_port()
    env = {**env, "METRICS_WORKER_PORT": str(port), "METRICS_LAG_INTERVAL_S": "0.5",
           "METRICS_READY_MAX_LAG_S": "5"}  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    purchases = [purchase(n) for n in range(40)]
    _produce_aged(settings, purchases, HOUR_MS)

    worker = Worker(env, tmp_path / "worker.log")
    try:
        behind = wait_for(f"{base}/readyz",
                          lambda r: r.status_code == 503 and r.json().get("lag_seconds", 0) > 3000,
                          60, worker.assert_alive)  # fmt: skip
        assert behind.json()["lag_records"] == len(purchases)
        ready = wait_for(f"{base}/readyz", lambda r: r.status_code == 200, 120, worker.assert_alive)
        assert ready.json()["lag_records"] == 0 and ready.json()["lag_seconds"] <= 5
        health = wait_for(f"{base}/healthz", lambda r: r.status_code == 200, 10)
        assert health.json()["last_beat_s_ago"] <= 15
        text = wait_for(f"{base}/metrics", lambda r: "sentinel_decisions_total{" in r.text, 10).text
    finally:
        worker.stop()

    group = app_id(settings)
    purchases_topic = topics.PURCHASES.name
    assert f'sentinel_records_consumed_total{{topic="{purchases_topic}"}} {float(len(purchases))}' in text
    for kind in ("records", "seconds"):
        series = [line for line in text.splitlines()
                  if line.startswith(f"sentinel_consumer_lag_{kind}{{")
                  and f'group="{group}"' in line and f'topic="{purchases_topic}"' in line]  # fmt: skip
        assert len(series) == topics.PURCHASES.partitions, series
        assert all(float(line.rsplit(" ", 1)[1]) <= 5 for line in series), series
    decided = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                  if line.startswith("sentinel_decisions_total{"))  # fmt: skip
    assert decided == len(purchases)
    phases = ("decode", "entity_wait", "features", "decide", "send")
    batches = {phase: sample(text, "sentinel_scoring_phase_seconds_count", phase=phase)
               for phase in phases}  # fmt: skip
    assert len(set(batches.values())) == 1 and batches["decide"] >= 1, batches  # once a batch
    assert batches["decide"] >= sample(text, "sentinel_batch_size_count")  # every decided one
    assert all(sample(text, "sentinel_scoring_phase_seconds_sum", phase=phase) > 0
               for phase in ("decode", "features", "decide", "send"))  # fmt: skip
    # each batch with records: the age of its oldest when it started (Kafka timestamps)
    assert 1 <= sample(text, "sentinel_batch_age_seconds_count") <= batches["decide"]
    assert sample(text, "sentinel_batch_age_seconds_sum") > 0
    # CPU by thread: the agents' loop, Faust's consumer thread by its name, the replica
    threads = {line.split('thread="', 1)[1].split('"', 1)[0]: float(line.rsplit(" ", 1)[1])
               for line in text.splitlines()
               if line.startswith("sentinel_thread_cpu_seconds_total{")}  # fmt: skip
    assert threads["MainThread"] > 0 and threads["faust-consumer"] > 0, threads
    assert "entity-replica" in threads and not any(n.startswith("Thread-") for n in threads), sorted(threads)

