"""At each assignment the worker's partitions go back to their committed offsets, also those
with nothing committed (``streams/faust_compat.py``, override 8).

aiokafka's ``seek_to_committed`` seeks only a partition committed above offset 0: one with
nothing committed, or committed at 0, stays where the fetcher got to. In a worker whose
fetched records were lost to a rebalance, that was the partition's end: nothing delivered
until the stall check noticed, 5-10 s later (three workers starting on a pre-loaded topic)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as ConfluentPartition
from confluent_kafka.admin import NewTopic

from infra import admin
from streams import faust_compat

pytestmark = pytest.mark.integration

RECORDS = 10


def fill(settings, topic: str, group: str) -> None:
    """RECORDS records on partitions 0 and 1; the group commits offset 0 of partition 1 only."""
    client = admin.admin_client(settings)  # referenced until the answer is in
    client.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    producer = Producer(settings.kafka.producer_conf())
    for n in range(2 * RECORDS):
        producer.produce(topic, str(n).encode(), partition=n % 2)
    assert producer.flush(30) == 0
    committer = Consumer(settings.kafka.consumer_conf(group))
    try:
        committer.commit(offsets=[ConfluentPartition(topic, 1, 0)], asynchronous=False)
    finally:
        committer.close()


async def read_to_end(settings, topic: str, group: str, reset: str) -> dict[int, tuple]:
    """Per partition: (position after reading everything, after aiokafka's seek to the
    committed offsets, after the worker's, the first offset fetched then)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap_servers,
                                group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        consumer.assign(tps)
        read = 0
        while read < 2 * RECORDS:
            batches = await consumer.getmany(timeout_ms=1000)
            read += sum(len(records) for records in batches.values())
        at_end = {tp.partition: await consumer.position(tp) for tp in tps}
        committed = await consumer.seek_to_committed()
        after_aiokafka = {tp.partition: await consumer.position(tp) for tp in tps}
        await faust_compat.seek_uncommitted(consumer, committed, reset)
        after_worker = {tp.partition: await consumer.position(tp) for tp in tps}
        first: dict[int, int] = {}
        for _ in range(5):  # nothing comes from a partition left at its end
            for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                first.setdefault(tp.partition, records[0].offset)
        return {p: (at_end[p], after_aiokafka[p], after_worker[p], first.get(p)) for p in (0, 1)}
    finally:
        await consumer.stop()


def test_partitions_with_nothing_or_zero_committed_go_back_to_the_start(settings) -> None:
    topic = f"{settings.kafka.topic_prefix}seek-uncommitted"
    group = f"{settings.kafka.topic_prefix}seekers"
    fill(settings, topic, group)
    seen = asyncio.run(read_to_end(settings, topic, group, "earliest"))
    # aiokafka alone leaves both at their end; the worker's seek brings both back to 0
    assert seen == {0: (RECORDS, RECORDS, 0, 0), 1: (RECORDS, RECORDS, 0, 0)}
