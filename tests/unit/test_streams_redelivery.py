"""What a worker remembers of the decisions already on the topic after an assignment: read once
per partition and generation, from the batch's first offset, looked up per purchase, dropped
once the partition has passed it."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from infra import topics
from streams.redelivery import Redeliveries, source_header, source_offset

pytestmark = pytest.mark.unit


def event(partition: int, offset: int, timestamp: float = 1_700_000_000.5):
    return SimpleNamespace(message=SimpleNamespace(partition=partition, offset=offset,
                                                   timestamp=timestamp))


class Topic:
    """Stands in for the decisions topic: partition -> {purchase id: purchase offset}."""

    def __init__(self, decided: dict[int, dict[str, int]]):
        self.decided, self.reads = decided, []

    def __call__(self, wanted):
        self.reads.append(dict(wanted))
        return {p: {pid: o for pid, o in self.decided.get(p, {}).items() if o >= first}
                for p, (first, _) in wanted.items()}


def test_decisions_are_partitioned_like_purchases():
    assert topics.DECISIONS.partitions == topics.PURCHASES.partitions


def test_the_source_offset_header_round_trips():
    assert source_offset(source_header(1234)) == 1234
    assert source_offset([("other", b"1")]) is None
    assert source_offset(None) is None


def test_each_partition_is_read_back_once_per_generation_from_its_first_offset():
    topic = Topic({0: {"a": 10, "b": 11, "old": 3}, 1: {"c": 40}})
    seen = Redeliveries(topic)
    asyncio.run(seen.load([event(0, 11), event(0, 10), event(1, 40)], generation=4))
    assert topic.reads == [{0: (10, 1_700_000_000_500), 1: (40, 1_700_000_000_500)}]
    assert seen.decided(0, "a") and seen.decided(0, "b") and seen.decided(1, "c")
    assert not seen.decided(0, "old") and not seen.decided(1, "a")
    asyncio.run(seen.load([event(0, 12), event(2, 5)], generation=4))
    assert topic.reads[1:] == [{2: (5, 1_700_000_000_500)}]  # partition 0: read already
    asyncio.run(seen.load([event(0, 12)], generation=5))  # a rebalance: read again
    assert topic.reads[2:] == [{0: (12, 1_700_000_000_500)}]
    assert not seen.decided(0, "a")


def test_a_partition_is_forgotten_once_its_records_passed_the_last_decided():
    seen = Redeliveries(Topic({0: {"a": 10, "b": 12}, 1: {"c": 40}}))
    asyncio.run(seen.load([event(0, 10), event(1, 40)], generation=1))
    seen.passed([event(0, 10), event(0, 11), event(1, 40)])
    assert seen.decided(0, "b") and not seen.decided(1, "c")
    seen.passed([event(0, 12)])
    assert seen.found == {} and seen.highest == {}


def test_a_failed_read_back_decides_the_redeliveries_again_and_does_not_retry_the_partition():
    calls = []

    def unreachable(wanted):
        calls.append(wanted)
        raise TimeoutError("broker away")

    seen = Redeliveries(unreachable)
    asyncio.run(seen.load([event(3, 7)], generation=2))
    asyncio.run(seen.load([event(3, 8)], generation=2))
    assert len(calls) == 1 and not seen.decided(3, "x")


def test_a_record_fetched_before_the_rebalance_does_not_say_where_the_partition_resumes():
    topic = Topic({0: {"a": 10, "b": 20}})
    seen = Redeliveries(topic)
    stale = event(0, 20)
    stale.message.generation_id = 3
    current = event(0, 10)
    current.message.generation_id = 4
    asyncio.run(seen.load([stale], generation=4))
    assert topic.reads == [] and not seen.decided(0, "a")
    asyncio.run(seen.load([current, stale], generation=4))
    assert topic.reads == [{0: (10, 1_700_000_000_500)}] and seen.decided(0, "a")
