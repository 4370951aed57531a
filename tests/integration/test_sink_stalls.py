"""A sink loop restarts an owned partition that stopped moving with records waiting, and leaves
alone the partitions it pauses on purpose while it backs off (``sinks/stalls.py``).

The stall is made here the way the loop could meet one: a partition left paused behind its
back (librdkafka keeps a pause across a rebalance; a fetch stuck after a broker restart looks
the same from the loop: records on the partition, none delivered)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest
from confluent_kafka import TopicPartition

from infra import topics
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from sinks.base import Record
from sinks.config import SinkSettings
from sinks.runner import SinkLoop
from sinks.testing import running, wait_until
from tests.integration.test_sink_rebalance import GatedSink, _produce

pytestmark = pytest.mark.integration

WATCHED = SinkSettings(backoff_initial_s=0.05, backoff_max_s=0.2, stall_s=1.5)


class PausingSink(GatedSink):
    """Pauses ``pause`` on the loop's consumer during its next write (on the loop's thread:
    a consumer's calls from another thread wait for the loop's)."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: SinkLoop | None = None
        self.pause: list[TopicPartition] = []

    def write(self, batch: Sequence[Record]) -> None:
        super().write(batch)
        if self.pause and self.loop is not None and self.loop.consumer is not None:
            self.loop.consumer.pause(self.pause)
            self.pause = []


def test_a_partition_left_paused_with_records_waiting_is_restarted(settings):
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.DECISIONS)
    sink = PausingSink()
    loop = SinkLoop(settings, sink, WATCHED, group_id=f"sink-stall-{uuid.uuid4().hex[:8]}")
    sink.loop = loop
    name = topics.full_name(topics.DECISIONS, settings.kafka.topic_prefix)
    with running(loop):
        sink.pause = [TopicPartition(name, 0)]  # behind the loop's back, in its first write
        _produce(settings, codec, range(0, 60))  # on every partition
        wait_until(lambda: len(sink.stored) >= 1 and not sink.pause, 60, "a first write")
        _produce(settings, codec, range(60, 180))
        wait_until(lambda: len(sink.stored) == 180, 30,
                   "every decision stored, those of the paused partition included")  # fmt: skip
        assert loop.stats.stalls >= 1
    assert loop.error is None


def test_partitions_paused_while_backing_off_are_not_taken_for_stalled(settings):
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.DECISIONS)
    sink = GatedSink()
    loop = SinkLoop(settings, sink, WATCHED, group_id=f"sink-stall-{uuid.uuid4().hex[:8]}")
    with running(loop):
        _produce(settings, codec, range(0, 60))
        wait_until(lambda: len(sink.stored) == 60, 60, "the first 60 stored")
        sink.down.set()  # every write fails: the loop backs off, its partitions paused
        _produce(settings, codec, range(60, 120))
        wait_until(lambda: sink.refused >= 2, 30, "writes refused while down")
        # paused, records waiting, for well over stall_s: a refused write every <= 0.2 s
        backoffs = int(3 * WATCHED.stall_s / WATCHED.backoff_max_s)
        wait_until(lambda: sink.refused >= backoffs, 60, f"{backoffs} writes refused")
        sink.down.clear()
        wait_until(lambda: len(sink.stored) == 120, 60, "every decision stored once back")
        assert loop.stats.stalls == 0
    assert loop.error is None
