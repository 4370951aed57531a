"""Reading a topic's records from the start, or from a point in time, up to its end now
(replay, backtests, and components that rebuild state on start-up)."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, TopicPartition

from infra import topics
from infra.settings import Settings
from schemas.codec import AvroCodec, DecodeError
from schemas.registry import registry_from_settings


def read_topic(settings: Settings, spec: topics.TopicSpec, timeout: float = 5.0,
               since_ms: int | None = None) -> list[dict]:
    """Every decodable record of a topic (with a record timestamp at or after ``since_ms``
    when given), up to its end now."""
    codec = AvroCodec.for_topic(registry_from_settings(settings), spec)
    name = topics.full_name(spec, settings.kafka.topic_prefix)
    consumer = Consumer(settings.kafka.consumer_conf(f"replay-{uuid.uuid4().hex[:8]}"))
    try:
        meta = consumer.list_topics(name, timeout=timeout).topics[name]
        ends = {p: consumer.get_watermark_offsets(TopicPartition(name, p), timeout)[1]
                for p in meta.partitions}
        starts = {p: 0 for p in ends}
        if since_ms is not None and ends:
            found = consumer.offsets_for_times(
                [TopicPartition(name, p, since_ms) for p in ends], timeout)
            starts = {tp.partition: tp.offset if tp.offset >= 0 else ends[tp.partition]
                      for tp in found}  # fmt: skip
        consumer.assign([TopicPartition(name, p, starts[p]) for p in ends if ends[p] > starts[p]])
        done = {p for p, end in ends.items() if end <= starts[p]}
        records = []
        while len(done) < len(ends):
            msg = consumer.poll(timeout)
            if msg is None:
                break
            if msg.error() is not None:
                continue
            try:
                records.append(codec.decode(msg.value()))
            except DecodeError:
                pass  # the worker dead-lettered it too
            offset = msg.offset()
            if offset is not None and offset + 1 >= ends[msg.partition()]:
                done.add(msg.partition())
        return records
    finally:
        consumer.close()
