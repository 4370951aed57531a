"""Consumer lag on the real broker, exactly: records (end − committed, from the log start when
nothing is committed) and seconds (age of the oldest unconsumed record, from its timestamp)."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client import REGISTRY

from infra import lag, topics

pytestmark = pytest.mark.integration
MINUTE_MS = 60_000


def test_lag_in_records_and_seconds_per_partition(settings) -> None:
    name = topics.full_name(topics.LABELS, settings.kafka.topic_prefix)
    group = f"lag-{uuid.uuid4().hex[:8]}"
    now_ms = int(time.time() * 1000)
    producer = Producer(settings.kafka.producer_conf())
    for n in range(10):  # partition 0: ten records, the n-th stamped 10 − n minutes ago
        producer.produce(name, b"v", b"k", partition=0, timestamp=now_ms - (10 - n) * MINUTE_MS)
    for _ in range(3):  # partition 1: three records, never consumed by the group
        producer.produce(name, b"v", b"k", partition=1, timestamp=now_ms - 30 * MINUTE_MS)
    assert producer.flush(30) == 0
    committer = Consumer(settings.kafka.consumer_conf(group))
    committer.commit(offsets=[TopicPartition(name, 0, 4)], asynchronous=False)
    committer.close()

    probe = lag.LagProbe(settings, group, [name])
    committed_only = lag.LagProbe(settings, group, [name], only_committed=True)
    try:
        rows = {r.partition: r for r in probe.measure(now_ms)}
        caught_up = committed_only.measure(now_ms)
    finally:
        probe.close()
        committed_only.close()
    assert set(rows) == set(range(topics.LABELS.partitions))
    assert (rows[0].committed, rows[0].end, rows[0].records) == (4, 10, 6)
    assert rows[0].seconds == 6 * 60  # the record at offset 4 is 6 minutes old
    assert (rows[1].committed, rows[1].records, rows[1].seconds) == (-1, 3, 30 * 60)
    assert all(rows[p].records == 0 and rows[p].seconds == 0 for p in range(2, len(rows)))
    assert [(r.partition, r.records) for r in caught_up] == [(0, 6)]

    lag.export(group, list(rows.values()), settings.kafka.topic_prefix)
    labels = {"group": group, "topic": topics.LABELS.name, "partition": "0"}
    assert REGISTRY.get_sample_value("sentinel_consumer_lag_records", labels) == 6
    assert REGISTRY.get_sample_value("sentinel_consumer_lag_seconds", labels) == 360
