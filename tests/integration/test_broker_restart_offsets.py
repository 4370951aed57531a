"""After a broker restart, a group reads on from its committed offsets, never from offset 0
(``streams/faust_compat.py``, override 7).

A broker that has just restarted answers OffsetFetch with COORDINATOR_LOAD_IN_PROGRESS at the
top of the response and no partitions while it loads ``__consumer_offsets``; aiokafka 0.14
alone read that as "no committed offset" and reset the partitions to the earliest offset.
The consumer here is the worker's (aiokafka with the overrides Faust's transport installs),
started the moment the restarted broker answers, so that its first OffsetFetch meets
the broker while it is still loading. Runs on a broker of its own: the shared one is never
restarted."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaConnectionError
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka import TopicPartition as ConfluentPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams import faust_compat
from tests.support.kafka_server import PrivateKafka, private_kafka

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOPIC, GROUP, PARTITIONS, RECORDS, COMMITTED = "records", "readers", 3, 100, 60
# Offset commits that make the restarted broker's load of __consumer_offsets last long enough
# (~0.5 s here) for the consumer's first OffsetFetch to meet it: 400 commits of 50 partitions
# with 4 000 bytes of metadata each (the broker's limit is 4 096), ~80 MB.
BULK_TOPIC, BULK_PARTITIONS, BULK_COMMITS, BULK_METADATA = "bulk", 50, 400, "x" * 4000


def fill_and_commit(kafka: PrivateKafka) -> None:
    """RECORDS records on each partition; the group's committed offset is COMMITTED on each."""
    conf = {"bootstrap.servers": kafka.bootstrap}
    admin = AdminClient(conf)
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(30)
    producer = Producer(conf)
    for n in range(RECORDS * PARTITIONS):
        producer.produce(TOPIC, str(n).encode(), partition=n % PARTITIONS)
    assert producer.flush(30) == 0
    admin.create_topics([NewTopic(BULK_TOPIC, BULK_PARTITIONS, 1)])[BULK_TOPIC].result(30)
    consumer = Consumer({**conf, "group.id": GROUP, "enable.auto.commit": False})
    try:
        bulk = [ConfluentPartition(BULK_TOPIC, p, 0, metadata=BULK_METADATA)
                for p in range(BULK_PARTITIONS)]
        for n in range(BULK_COMMITS):
            consumer.commit(offsets=bulk, asynchronous=n % 50 != 49)  # in flight: 50 at most
        consumer.commit(offsets=[ConfluentPartition(TOPIC, p, COMMITTED) for p in range(PARTITIONS)],
                        asynchronous=False)
    finally:
        consumer.close()


def answering(bootstrap: str, deadline: float) -> bool:
    """Block until the broker answers a metadata request (librdkafka reconnects every few
    milliseconds while the port is closed) or the deadline passes."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "reconnect.backoff.ms": 5,
                         "reconnect.backoff.max.ms": 20, "log_level": 0})
    try:
        return bool(admin.list_topics(timeout=max(0.0, deadline - time.monotonic())).brokers)
    except KafkaException:
        return False


async def started_consumer(bootstrap: str, deadline: float) -> AIOKafkaConsumer:
    """The worker's kind of consumer (earliest when nothing is committed, as Faust sets it),
    started as soon as the broker answers."""
    assert await asyncio.to_thread(answering, bootstrap, deadline), "the broker never answered"
    while True:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=GROUP,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        consumer.assign([TopicPartition(TOPIC, p) for p in range(PARTITIONS)])
        try:
            await consumer.start()
            return consumer
        except KafkaConnectionError:
            await consumer.stop()
            assert time.monotonic() < deadline, "the broker never answered"


async def first_offsets(consumer: AIOKafkaConsumer, deadline: float) -> dict[int, int]:
    """The first offset the consumer delivers on each partition (its fetcher's own read of
    the committed offsets)."""
    first: dict[int, int] = {}
    while len(first) < PARTITIONS:
        assert time.monotonic() < deadline, f"records came only from {first}"
        for tp, messages in (await consumer.getmany(timeout_ms=500)).items():
            first.setdefault(tp.partition, messages[0].offset)
    return first


async def committed_offsets(consumer: AIOKafkaConsumer) -> dict[int, int | None]:
    """What ``committed`` answers per partition: Faust's ``perform_seek`` reads this."""
    return {p: await consumer.committed(TopicPartition(TOPIC, p)) for p in range(PARTITIONS)}


async def meet_restarted_broker(bootstrap: str, deadline: float) -> tuple[dict, dict]:
    consumer = await started_consumer(bootstrap, deadline)
    try:
        return await asyncio.gather(first_offsets(consumer, deadline), committed_offsets(consumer))
    finally:
        await consumer.stop()


def test_a_consumer_meeting_the_restarted_broker_resumes_at_the_committed_offsets(caplog):
    faust_compat.register()  # as the worker's app does: the consumer's coordinator
    with private_kafka() as kafka:
        fill_and_commit(kafka)
        kafka.stop()
        starting = threading.Thread(target=kafka.start)
        starting.start()
        try:
            first, committed = asyncio.run(
                meet_restarted_broker(kafka.bootstrap, time.monotonic() + 60))
        finally:
            starting.join()
    assert committed == dict.fromkeys(range(PARTITIONS), COMMITTED)
    assert first == dict.fromkeys(range(PARTITIONS), COMMITTED)
    refusals = [r.getMessage() for r in caplog.records
                if r.name == faust_compat.__name__ and "not read: the broker answered" in r.getMessage()]
    assert refusals, "the consumer never met the broker loading its offsets: this run proved nothing"
