"""The chain listener's checkpoint: the last published block, in a compacted Kafka topic.

Key ``"{chain_id}:{listener name}"``, value JSON ``{"block": n, "hash": "0x…"}``. The newest
value of a key is the checkpoint; compaction keeps one per key. It is written in the same Kafka
transaction as the block's records (``connectors.chain_kafka``), and read back with
``isolation.level=read_committed``, so a checkpoint never names a block whose records are not
on the topic, and records of a block after the checkpoint are never visible.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition


class CheckpointError(RuntimeError):
    """The checkpoint topic could not be read to its end in time."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    block: int
    hash: str

    def to_bytes(self) -> bytes:
        return json.dumps({"block": self.block, "hash": self.hash}).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Checkpoint:
        value = json.loads(data)
        return cls(block=int(value["block"]), hash=str(value["hash"]))


def checkpoint_key(chain_id: int, name: str) -> str:
    return f"{chain_id}:{name}"


def read_checkpoint(
    consumer_conf: dict, topic: str, key: str, *, deadline_s: float = 30.0
) -> Checkpoint | None:
    """The newest committed checkpoint of ``key``: reads every partition of ``topic`` to its
    end (the topic is small and compacted). None when the key was never written."""
    conf = {
        **consumer_conf,
        "group.id": f"chain-checkpoint-reader-{uuid.uuid4().hex}",
        "isolation.level": "read_committed",
        "enable.partition.eof": True,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    consumer = Consumer(conf)
    try:
        return _scan(consumer, topic, key.encode(), time.monotonic() + deadline_s)
    finally:
        consumer.close()


def _scan(consumer: Consumer, topic: str, key: bytes, deadline: float) -> Checkpoint | None:
    metadata = consumer.list_topics(topic, timeout=10)
    if metadata.topics[topic].error is not None:
        raise CheckpointError(f"{topic}: {metadata.topics[topic].error}")
    partitions = list(metadata.topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    pending, found = set(partitions), None
    while pending:
        if time.monotonic() > deadline:
            raise CheckpointError(f"{topic}: not read to its end in time")
        message = consumer.poll(0.5)
        if message is None:
            continue
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                pending.discard(message.partition())
                continue
            raise KafkaException(error)
        value = message.value()
        if message.key() == key and value is not None:
            found = Checkpoint.from_bytes(value)
    return found
