"""A sink loop that loses partitions in a rebalance while it backs off (partitions paused)
reads them again once they come back.

librdkafka keeps a partition's pause across a rebalance: a partition paused, revoked and
assigned again later stays paused. The loop pauses what it owns while it waits out a failing
write (``SinkLoop._wait_paused``); if the group rebalances meanwhile, the partitions it loses
must not come back paused, or the sink never reads them again (nothing is lost on the topic,
it is just never stored: the chaos run's ``decided_not_stored`` after the broker restart).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence

import pytest
from confluent_kafka import Consumer

from infra import admin, topics
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from sinks.base import BatchSink, Record, SinkUnavailableError
from sinks.config import SinkSettings
from sinks.runner import SinkLoop
from sinks.testing import decision, running, wait_until
from tests.support.kafka import produce

pytestmark = pytest.mark.integration

FAST = SinkSettings(backoff_initial_s=0.05, backoff_max_s=0.2)


class GatedSink(BatchSink):
    """Keeps the purchase ids it was given; refuses every write while ``down`` is set."""

    name = "gated"
    topics = (topics.DECISIONS,)

    def __init__(self) -> None:
        self.down = threading.Event()
        self.refused = 0
        self.stored: set[str] = set()

    def setup(self) -> None:
        pass

    def write(self, batch: Sequence[Record]) -> None:
        if self.down.is_set():
            self.refused += 1
            raise SinkUnavailableError("backend down (test)")
        self.stored.update(r.value["purchase_id"] for r in batch)


def _produce(settings, codec, numbers) -> None:
    produce(settings, topics.DECISIONS,
            [(decision(n)["wallet"], codec.encode(decision(n))) for n in numbers])  # fmt: skip


def _member(settings, group: str) -> Consumer:
    """Another member of the sink's group: joining makes the group rebalance, taking part of
    the loop's partitions; closing gives them back."""
    consumer = Consumer(settings.kafka.consumer_conf(group))
    consumer.subscribe([topics.full_name(topics.DECISIONS, settings.kafka.topic_prefix)])
    return consumer


def _stable_with(settings, group: str, members: int) -> bool:
    """The broker's view (the loop's consumer is its thread's alone): ``group`` is stable with
    ``members`` members."""
    return admin.stable_members(admin.admin_client(settings), group) == members


def test_partitions_lost_while_backing_off_are_read_again_when_they_come_back(settings):
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.DECISIONS)
    sink = GatedSink()
    group = f"sink-rebalance-{uuid.uuid4().hex[:8]}"
    loop = SinkLoop(settings, sink, FAST, group_id=group)
    with running(loop):
        _produce(settings, codec, range(0, 60))  # on every partition
        wait_until(lambda: len(sink.stored) == 60, 60, "the first 60 stored")
        wait_until(lambda: _stable_with(settings, group, 1), 30, "the loop alone in its group")

        sink.down.set()  # every write fails: the loop backs off, its partitions paused
        _produce(settings, codec, range(60, 120))
        wait_until(lambda: sink.refused >= 2, 30, "writes refused while down")

        other = _member(settings, group)  # the group rebalances: the loop loses some
        try:
            deadline = time.monotonic() + 60
            while not other.assignment():  # the loop rejoined, so it gave its partitions up
                assert time.monotonic() < deadline, "the second member never got partitions"
                other.consume(100, 0.1)  # read, never committed: the loop reads them again
            assert len(other.assignment()) < topics.DECISIONS.partitions
            wait_until(lambda: _stable_with(settings, group, 2), 30, "two members")
            sink.down.clear()  # the backend is back while those partitions are elsewhere
            wait_until(lambda: not loop.failing, 30, "the loop writing again")
        finally:
            other.close()  # the partitions come back to the loop

        wait_until(lambda: _stable_with(settings, group, 1), 60, "the loop alone again")
        _produce(settings, codec, range(120, 180))
        wait_until(lambda: len(sink.stored) == 180, 60,
                   "every decision stored, those of the partitions that came back included")  # fmt: skip
    assert loop.error is None
