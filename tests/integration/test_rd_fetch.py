"""``PartitionReader`` (streams/rd_fetch.py) on a real broker: it reads the partitions it is
told from the offsets it is told, a new placement replaces what was fetched before it, a
dropped partition delivers nothing, and a partition left unread holds at most
``max_buffered`` records, then is read on from where it stopped, without a gap."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from confluent_kafka import Producer
from faust.types import TP

from infra import topics
from streams.rd_fetch import PartitionReader
from tests.conftest import app_id
from tests.support.http import until

pytestmark = pytest.mark.integration


def _produce(settings, name: str, partition: int, n: int, tag: str) -> None:
    producer = Producer(settings.kafka.producer_conf())
    for i in range(n):
        producer.produce(name, f"{tag}{i}".encode(), b"k", partition=partition)
    assert producer.flush(30) == 0


async def _take(reader: PartitionReader, want: int, timeout: float = 20.0,
                active: set | None = None) -> dict[TP, list[int]]:
    got: dict[TP, list[int]] = {}
    deadline = time.monotonic() + timeout
    while sum(map(len, got.values())) < want and time.monotonic() < deadline:
        await reader.wait(active, 0.2)
        for tp, messages in reader.take(active, 500).items():
            got.setdefault(tp, []).extend(m.offset() for m in messages)
    return got


@asynccontextmanager
async def reading(settings, **kwargs) -> AsyncIterator[PartitionReader]:
    conf = settings.kafka.consumer_conf(f"{app_id(settings)}-reader",
                                        **{"enable.auto.offset.store": False})
    reader = PartitionReader(conf, asyncio.get_running_loop(), **kwargs)
    reader.start()
    try:
        yield reader
    finally:
        reader.stop()


def _topic(settings) -> str:
    return topics.full_name(topics.PURCHASES, settings.kafka.topic_prefix)


def _written(settings, counts: dict[int, int]) -> list[TP]:
    """``counts[p]`` records written to partition ``p`` of the purchases topic; its TPs."""
    name = _topic(settings)
    for partition, n in counts.items():
        _produce(settings, name, partition, n, f"p{partition}-")
    return [TP(name, partition) for partition in counts]


def test_placed_partitions_are_read_from_their_offsets(settings) -> None:
    async def scenario() -> None:
        p0, p1 = _written(settings, {0: 10, 1: 5})
        async with reading(settings) as reader:
            reader.place(p0, 3)
            reader.place(p1, 0)
            assert await _take(reader, 12) == {p0: list(range(3, 10)), p1: list(range(5))}
            want = {p0: 10, p1: 5}  # read from librdkafka's cache every HIGHWATER_EVERY_S
            await until(lambda: reader.highwaters == want, f"highwaters {reader.highwaters}")

    asyncio.run(scenario())


def test_a_placement_replaces_what_was_fetched_before_it(settings) -> None:
    async def scenario() -> None:
        (tp,) = _written(settings, {2: 20})
        async with reading(settings) as reader:
            reader.place(tp, 0)
            await until(lambda: reader.waiting() > 0, "nothing fetched", timeout_s=10)
            reader.place(tp, 15)  # a seek forward: nothing below 15 may come after it
            assert await _take(reader, 5) == {tp: [15, 16, 17, 18, 19]}
            reader.place(tp, 4)  # and back
            assert await _take(reader, 16) == {tp: list(range(4, 20))}

    asyncio.run(scenario())


def test_a_dropped_partition_delivers_nothing(settings) -> None:
    async def scenario() -> None:
        p3, p4 = _written(settings, {3: 5, 4: 5})
        async with reading(settings) as reader:
            reader.place(p3, 0)
            reader.place(p4, 0)
            assert await _take(reader, 5, active={p4}) == {p4: list(range(5))}
            reader.drop([p3])
            _written(settings, {3: 5, 4: 5})  # p4's written after p3's: once they are in,
            assert await _take(reader, 5, active={p4}) == {p4: list(range(5, 10))}
            assert reader.take(None, 500) == {}  # p3's would have come with them
            assert p3 not in reader.placed()

    asyncio.run(scenario())


def test_an_unread_partition_holds_at_most_max_buffered_then_reads_on(settings) -> None:
    async def scenario() -> None:
        (tp,) = _written(settings, {5: 100})
        async with reading(settings, max_buffered=10) as reader:
            reader.place(tp, 0)
            # nobody takes: the partition fills, then pauses, with all 100 known to be there
            await until(lambda: reader.highwaters.get(tp) == 100 and reader.waiting() >= 10,
                        "the partition never filled", timeout_s=10)
            assert reader.waiting() == 10
            offsets: list[int] = []
            deadline = time.monotonic() + 20
            while len(offsets) < 100 and time.monotonic() < deadline:
                await reader.wait(None, 0.2)
                taken = reader.take(None, 3)  # slowly: pauses and resumes on the way
                for messages in taken.values():
                    offsets.extend(m.offset() for m in messages)
                assert reader.waiting() <= 10
            assert offsets == list(range(100))

    asyncio.run(scenario())
