"""The chaos run's diagnosis of lost purchases (``chaos_report.lost_where``), on a real broker:
a purchase decided on the topic but missing from PostgreSQL is told apart from one never
decided, and the never-decided ones are placed on their partition beside the workers'
committed offset and the partition's end."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from confluent_kafka import Consumer, TopicPartition

from infra import topics
from infra.chaos_report import lost_where, read_all_placed
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from sinks.testing import decision
from tests.conftest import app_id
from tests.integration.test_worker_restart import simulated_purchases
from tests.support.kafka import produce

pytestmark = pytest.mark.integration


def test_lost_purchases_are_placed_where_they_stopped(settings, tmp_path) -> None:
    settings = settings.model_copy(update={"stream": settings.stream.model_copy(
        update={"app_id": app_id(settings)})})  # fmt: skip
    registry = registry_from_settings(settings)
    purchases = simulated_purchases(8)
    encode = AvroCodec.for_topic(registry, topics.PURCHASES).encode
    produce(settings, topics.PURCHASES, [(p["wallet"], encode(p)) for p in purchases])
    decided = purchases[0]["purchase_id"]
    produce(settings, topics.DECISIONS, [(purchases[0]["wallet"], AvroCodec.for_topic(
        registry, topics.DECISIONS).encode(decision(0, purchase_id=decided)))])  # fmt: skip

    placed = {AvroCodec.for_topic(registry, topics.PURCHASES).decode(v)["purchase_id"]: (p, o)
              for p, o, v in read_all_placed(settings, topics.PURCHASES)}  # fmt: skip
    undecided = [pid for pid in placed if pid != decided]
    per_partition = Counter(placed[pid][0] for pid in undecided)
    ends = Counter(p for p, _ in placed.values())
    committed_partition = placed[undecided[0]][0]
    name = topics.full_name(topics.PURCHASES, settings.kafka.topic_prefix)
    group = Consumer(settings.kafka.consumer_conf(settings.stream.app_id))
    try:
        group.commit(offsets=[TopicPartition(name, committed_partition, 1)], asynchronous=False)
    finally:
        group.close()

    log = tmp_path / "sink-postgres.log"
    log.write_text("2026-12-07 01:25:00,093 INFO sinks.runner sink postgres consuming\n"
                   "%3|1796606717.505|FAIL|rdkafka#consumer-1| Connection refused\n"
                   "%4|1796606722.019|SESSTMOUT|rdkafka#consumer-1| session timed out\n"
                   "2026-12-07 01:25:22,352 WARNING sinks.runner sink postgres: commit failed\n")
    sink = Consumer(settings.kafka.consumer_conf(
        f"{settings.kafka.topic_prefix}sentinel-sink-postgres", **{"client.id": "the-sink"}))
    try:  # a member of the sink's group that owns the decisions partitions and reads nothing
        sink.subscribe([topics.full_name(topics.DECISIONS, settings.kafka.topic_prefix)])
        deadline = time.monotonic() + 60
        while not sink.assignment():
            assert time.monotonic() < deadline, "the sink's group never assigned"
            sink.poll(0.1)
        sink.pause(sink.assignment())
        where = lost_where(settings, [*placed, "pur_never_published"], log)
    finally:
        sink.close()

    assert where["not_published"] == 1
    assert where["decided_not_stored"] == 1
    [(d_partition, d_offset, _)] = read_all_placed(settings, topics.DECISIONS)
    assert where["not_stored_by_partition"] == {str(d_partition): {
        "lost": 1, "first_lost_offset": d_offset, "committed": -1001, "end": d_offset + 1}}
    [(member, owned)] = where["sink_group"]["members"].items()
    assert member.startswith("the-sink ") and owned == list(range(topics.DECISIONS.partitions))
    assert [line.split("|")[2] if line.startswith("%") else line.split()[2]
            for line in where["sink_warnings"]] == ["SESSTMOUT", "WARNING"]
    never = where["never_decided"]
    assert {int(p): v["lost"] for p, v in never.items()} == dict(per_partition)
    for partition, found in never.items():
        offsets = [placed[pid][1] for pid in undecided if placed[pid][0] == int(partition)]
        assert found["first_lost_offset"] == min(offsets)
        assert found["end"] == ends[int(partition)]
        assert found["committed"] == (1 if int(partition) == committed_partition else -1001)
    assert lost_where(settings, []) == {}
