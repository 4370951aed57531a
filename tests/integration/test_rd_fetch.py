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


def test_placed_partitions_are_read_from_their_offsets(settings) -> None:
    async def scenario() -> None:
        name = _topic(settings)
        _produce(settings, name, 0, 10, "a")
        _produce(settings, name, 1, 5, "b")
        async with reading(settings) as reader:
            reader.place(TP(name, 0), 3)
            reader.place(TP(name, 1), 0)
            got = await _take(reader, 12)
            assert got == {TP(name, 0): list(range(3, 10)), TP(name, 1): list(range(5))}
            want = {TP(name, 0): 10, TP(name, 1): 5}
            for _ in range(50):  # read from librdkafka's cache every HIGHWATER_EVERY_S
                if reader.highwaters == want:
                    break
                await asyncio.sleep(0.1)
            assert reader.highwaters == want

    asyncio.run(scenario())


def test_a_placement_replaces_what_was_fetched_before_it(settings) -> None:
    async def scenario() -> None:
        name = _topic(settings)
        _produce(settings, name, 2, 20, "c")
        async with reading(settings) as reader:
            tp = TP(name, 2)
            reader.place(tp, 0)
            await reader.wait(None, 10)
            await asyncio.sleep(0.3)  # the first records filed, more maybe on the way
            reader.place(tp, 15)  # a seek forward: nothing below 15 may come after it
            got = await _take(reader, 5)
            assert got == {tp: [15, 16, 17, 18, 19]}
            reader.place(tp, 4)  # and back
            got = await _take(reader, 16)
            assert got == {tp: list(range(4, 20))}

    asyncio.run(scenario())


def test_a_dropped_partition_delivers_nothing(settings) -> None:
    async def scenario() -> None:
        name = _topic(settings)
        _produce(settings, name, 3, 5, "d")
        _produce(settings, name, 4, 5, "e")
        async with reading(settings) as reader:
            reader.place(TP(name, 3), 0)
            reader.place(TP(name, 4), 0)
            got = await _take(reader, 5, active={TP(name, 4)})
            assert got == {TP(name, 4): list(range(5))}
            reader.drop([TP(name, 3)])
            _produce(settings, name, 3, 5, "d")
            await asyncio.sleep(1.0)
            assert reader.take(None, 500) == {}
            assert TP(name, 3) not in reader.placed()

    asyncio.run(scenario())


def test_an_unread_partition_holds_at_most_max_buffered_then_reads_on(settings) -> None:
    async def scenario() -> None:
        name = _topic(settings)
        tp = TP(name, 5)
        _produce(settings, name, 5, 100, "f")
        async with reading(settings, max_buffered=10) as reader:
            reader.place(tp, 0)
            await asyncio.sleep(2.0)  # nobody takes: the partition fills, then pauses
            assert reader._waiting == 10
            offsets: list[int] = []
            deadline = time.monotonic() + 20
            while len(offsets) < 100 and time.monotonic() < deadline:
                await reader.wait(None, 0.2)
                taken = reader.take(None, 3)  # slowly: pauses and resumes on the way
                for messages in taken.values():
                    offsets.extend(m.offset() for m in messages)
                assert reader._waiting <= 10
            assert offsets == list(range(100))

    asyncio.run(scenario())
