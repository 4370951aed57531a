"""Dead letters of a sink loop: a rejected record's original key and bytes, the error class
and message, and where it came from, to ``<topic>.dlq`` (a ``DeadLetter`` record).

``flush()`` returns only when every dead letter was acknowledged (re-producing those
librdkafka gave up on): the loop commits a batch's offsets only after that.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import Message, Producer

from infra import topics
from infra.logsafe import scrub
from infra.producing import Deliveries, dead_letter
from infra.topics import TopicSpec
from schemas.codec import AvroCodec
from schemas.registry import Registry

log = logging.getLogger(__name__)


class DeadLetters:
    def __init__(
        self, registry: Registry, specs: dict[str, TopicSpec], prefix: str, component: str
    ):
        """``specs`` maps the broker-side origin topic names to their specs."""
        self.component = component
        self._targets: dict[str, tuple[str, AvroCodec]] = {}
        for name, spec in specs.items():
            dlq = topics.dlq(spec)
            codec = AvroCodec.for_topic(registry, dlq)
            self._targets[name] = (topics.full_name(dlq, prefix), codec)
        self._failed: list[Message] = []
        self.producer: Producer | None = None
        self._wrapped: Deliveries | None = None
        self.sent = 0

    def send(self, topic: str, partition: int, offset: int, key, value, error: Exception) -> None:
        letter = dead_letter(topic, partition, offset, key, value, error, self.component)
        log.warning("dead-lettered %s[%s]@%s: %.300s", topic, partition, offset, scrub(error))
        dlq_name, codec = self._targets[topic]
        assert self.producer is not None
        self._deliveries().produce(dlq_name, codec.encode(letter), key,
                                          on_delivery=self._on_delivery)
        self.sent += 1

    def _deliveries(self) -> Deliveries:
        """The producer (set by the loop that owns it) behind the one producing helper."""
        assert self.producer is not None
        if self._wrapped is None or self._wrapped.producer is not self.producer:
            self._wrapped = Deliveries(self.producer)
        return self._wrapped

    def _on_delivery(self, err, msg) -> None:
        if err is not None:
            log.error("dead letter to %s failed: %s", msg.topic(), err)
            self._failed.append(msg)

    def flush(self, give_up: Callable[[], bool]) -> bool:
        """Wait until every dead letter is acknowledged; False if ``give_up()`` first."""
        assert self.producer is not None
        while self.producer.flush(5.0) or self._failed:
            if give_up():
                return False
            failed, self._failed = self._failed, []
            for msg in failed:  # librdkafka gave up on these: produce them again
                topic = msg.topic()
                assert topic is not None  # a delivery report names its topic
                self._deliveries().produce(topic, msg.value(), msg.key(),
                                                  on_delivery=self._on_delivery)
        return True
