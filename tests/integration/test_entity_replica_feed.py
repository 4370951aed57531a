"""The worker's reader feeds the entity replica (``streams/rd_fetch.Feed``): once the records
the reader hands over follow on from what the replica has, the replica's own consumer stops
fetching that partition and every later record of it is applied once, from the feed; when the
reader drops the partition, the replica fetches it itself again from where the feed left it.
A real broker, a real ``PartitionReader`` and a replica on its own thread, as in the worker."""

from __future__ import annotations

import asyncio
import time

import pytest
from confluent_kafka import OFFSET_END, TopicPartition
from faust.types import TP

from infra import topics
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from streams import rd_fetch
from streams.entity_replica import EntityReplica
from tests.integration.test_rd_fetch import reading
from tests.integration.test_worker_restart import simulated_purchases
from tests.support.kafka import produce

pytestmark = pytest.mark.integration


class Counting:
    """The replica's consumer, counting the records it hands out (partition -> offsets)."""

    def __init__(self, consumer) -> None:
        self._consumer = consumer
        self.fetched: dict[int, list[int]] = {}

    def consume(self, *args, **kwargs):
        messages = self._consumer.consume(*args, **kwargs)
        for m in messages:
            if m.error() is None:
                self.fetched.setdefault(m.partition(), []).append(m.offset())
        return messages

    def __getattr__(self, name):
        return getattr(self._consumer, name)


async def _drain(reader, until) -> None:
    """Take the reader's records as Faust would, until ``until()`` (30 s at most)."""
    deadline = time.monotonic() + 30
    while not until():
        assert time.monotonic() < deadline
        await reader.wait(None, 0.05)
        reader.take(None, 500)


def test_fed_partitions_are_fetched_once_and_given_back_when_the_reader_drops_them(settings):
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.PURCHASES)
    encoded = iter([(p["wallet"], codec.encode(p)) for p in simulated_purchases(600)])
    name = topics.full_name(topics.PURCHASES, settings.kafka.topic_prefix)
    replica = EntityReplica(settings, codec)
    counting = replica.consumer = Counting(replica.consumer)
    replica.start()
    rd_fetch.FEEDS[name] = replica
    partitions = set(replica.held)

    def write(n: int) -> None:
        produce(settings, topics.PURCHASES, [next(encoded) for _ in range(n)])

    def read_to_the_end() -> bool:  # held or applied (no batch announced: held)
        ends = replica.ends_reader.offsets_for_times(
            [TopicPartition(name, p, OFFSET_END) for p in partitions], timeout=10)
        return all(replica._expected(tp.partition) >= tp.offset for tp in ends)

    async def scenario() -> None:
        async with reading(settings) as reader:
            for p in partitions:
                reader.place(TP(name, p), 0)
            deadline = time.monotonic() + 60
            while replica.fed != partitions:  # each partition once the feed brings a record first
                assert time.monotonic() < deadline, (replica.fed, partitions)
                write(12)
                await _drain(reader, read_to_the_end)
            before = {p: len(counting.fetched.get(p, [])) for p in partitions}
            write(120)
            await _drain(reader, read_to_the_end)
            assert {p: len(counting.fetched.get(p, [])) for p in partitions} == before
            assert replica.fed == partitions

            dropped = min(partitions)
            reader.drop([TP(name, dropped)])
            await _drain(reader, lambda: dropped not in replica.fed)
            left_at = replica._expected(dropped)
            write(120)
            await _drain(reader, read_to_the_end)
            fetched = set(counting.fetched[dropped][before[dropped]:])
            # read on from where the feed left it, by its own consumer
            assert set(range(left_at, replica._expected(dropped))) <= fetched
            assert replica._expected(dropped) > left_at
            assert replica.fed == partitions - {dropped}

    try:
        asyncio.run(scenario())
    finally:
        rd_fetch.FEEDS.pop(name, None)
        replica.stop()


def test_a_batch_fed_before_the_readers_report_of_the_ends_is_covered_without_an_ask(settings):
    """One broker leads every partition here: the worker's reader reports where the
    partitions it fetches end after feeding what it fetched (``Feed.ended``), and a batch
    whose records were fed before a report is covered by it, later than every record (so
    every partition needs its end), without the replica asking the broker."""
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.PURCHASES)
    encoded = iter([(p["wallet"], codec.encode(p)) for p in simulated_purchases(300)])
    name = topics.full_name(topics.PURCHASES, settings.kafka.topic_prefix)
    replica = EntityReplica(settings, codec)
    own_asks: list[int] = []  # the batch (fence) each of its own asks was for
    ask_ends = replica._ask_ends
    replica._ask_ends = lambda: own_asks.append(replica.asked) or ask_ends()  # type: ignore
    replica.start()
    assert replica.one_leader
    rd_fetch.FEEDS[name] = replica
    partitions = set(replica.held)
    later = 2**53  # a batch later than every record: each partition needs its end

    def write(n: int) -> None:
        produce(settings, topics.PURCHASES, [next(encoded) for _ in range(n)])

    def reported_after(offsets: dict[int, int]) -> bool:
        report = replica.reader_ends
        return report is not None and set(report[1]) == partitions and all(
            report[0].get(p, 0) > o for p, o in offsets.items())

    async def scenario() -> None:
        async with reading(settings) as reader:
            for p in partitions:
                reader.place(TP(name, p), 0)
            deadline = time.monotonic() + 60
            while replica.fed != partitions:
                assert time.monotonic() < deadline, (replica.fed, partitions)
                write(12)
                await _drain(reader, lambda: replica.fed == partitions or not reader.waiting())
            write(30)
            await _drain(reader, lambda: replica._fed_to and reported_after(
                {p: o - 1 for p, o in replica._fed_to.items()}))
            offsets = {p: o - 1 for p, o in replica._fed_to.items()}
            fence = replica.announce(offsets, dict.fromkeys(offsets, 0), later)
            assert await asyncio.to_thread(replica.wait_covers, later, offsets, 10.0, fence)
            assert all(asked < fence for asked in own_asks)  # covered by the reader's report
            ends = replica.ends_reader.offsets_for_times(
                [TopicPartition(name, p, OFFSET_END) for p in partitions], timeout=10)
            assert all(replica._reached(tp.partition) >= tp.offset for tp in ends)

    try:
        asyncio.run(scenario())
    finally:
        rd_fetch.FEEDS.pop(name, None)
        replica.stop()
