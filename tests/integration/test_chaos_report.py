"""The chaos run's diagnosis of lost purchases (``chaos_report.lost_where``), on a real broker:
a purchase decided on the topic but missing from PostgreSQL is told apart from one never
decided, and the never-decided ones are placed on their partition beside the workers'
committed offset and the partition's end."""

from __future__ import annotations

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


def test_lost_purchases_are_placed_where_they_stopped(settings) -> None:
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

    where = lost_where(settings, [*placed, "pur_never_published"])

    assert where["not_published"] == 1
    assert where["decided_not_stored"] == 1
    never = where["never_decided"]
    assert {int(p): v["lost"] for p, v in never.items()} == dict(per_partition)
    for partition, found in never.items():
        offsets = [placed[pid][1] for pid in undecided if placed[pid][0] == int(partition)]
        assert found["first_lost_offset"] == min(offsets)
        assert found["end"] == ends[int(partition)]
        assert found["committed"] == (1 if int(partition) == committed_partition else -1001)
    assert lost_where(settings, []) == {}
