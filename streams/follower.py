"""Follow a compacted topic in every worker: read it all at start-up, then take what arrived
at the start of each batch, without waiting.

``TopicFollower(settings, spec)`` assigns every partition from the beginning (no consumer
group: every worker reads every record, nothing is committed), reads up to the end offsets
the broker reports when it starts (so a restarted worker has the same view), and ``poll()``
applies whatever arrived since. Subclasses say what a record means (``apply(key, value)``).
``position`` is the next offset to apply per partition: how far the follower has applied.
"""

from __future__ import annotations

import logging
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from infra import topics
from infra.settings import Settings

log = logging.getLogger(__name__)


class TopicFollower:
    def __init__(self, settings: Settings, spec: topics.TopicSpec, catch_up_s: float = 15.0):
        self.topic = topics.full_name(spec, settings.kafka.topic_prefix)
        conf = settings.kafka.consumer_conf(f"follower-{uuid.uuid4().hex[:8]}")
        self.consumer = Consumer(conf)
        meta = self.consumer.list_topics(self.topic, timeout=catch_up_s).topics[self.topic]
        self.partitions = sorted(meta.partitions) or [0]
        self.position = dict.fromkeys(self.partitions, 0)
        self.consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING)
                              for p in self.partitions])

    def catch_up(self, timeout_s: float = 15.0) -> None:
        """Read up to the end offsets the broker reports now."""
        ends = {p: self.consumer.get_watermark_offsets(TopicPartition(self.topic, p),
                                                       timeout_s)[1] for p in self.partitions}
        deadline = time.monotonic() + timeout_s
        while any(self.position[p] < ends[p] for p in ends) and time.monotonic() < deadline:
            self._apply_all(self.consumer.consume(500, 0.2))
        behind = {p: ends[p] - self.position[p] for p in ends if self.position[p] < ends[p]}
        if behind:
            log.warning("%s: start-up read incomplete, records behind per partition: %s",
                        self.topic, behind)

    def poll(self) -> int:
        """Apply what arrived since the last call (never blocks); return how many records."""
        applied = 0
        while True:
            messages = self.consumer.consume(500, 0)
            applied += self._apply_all(messages)
            if len(messages) < 500:
                return applied

    def _apply_all(self, messages) -> int:
        applied = 0
        for msg in messages:
            if msg.error() is None:
                self.apply(msg.key(), msg.value())
                self.position[msg.partition()] = msg.offset() + 1
                applied += 1
        return applied

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.consumer.close()
