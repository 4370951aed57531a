"""What agents send: decisions, security events and dead letters, through ONE confluent-kafka
producer (about twice Faust's own ``send`` rate, DESIGN.md "Performance facts").

Agents call ``flush()`` at the end of each batch, before Faust acknowledges the batch's
offsets: a crash can repeat a batch's outputs (at-least-once; sinks dedupe by natural key) but
never lose them.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from confluent_kafka import Producer

from infra import topics
from infra.settings import Settings
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from streams import metrics

log = logging.getLogger(__name__)


class OutputError(RuntimeError):
    """The broker did not acknowledge every record of a batch."""


class Outputs:
    def __init__(self, settings: Settings, component: str):
        self.component = component
        self.prefix = settings.kafka.topic_prefix
        registry = registry_from_settings(settings)
        self.decisions = AvroCodec.for_topic(registry, topics.DECISIONS)
        self.security_events = AvroCodec.for_topic(registry, topics.SECURITY_EVENTS)
        self.dead_letters = AvroCodec.for_topic(registry, topics.dlq(topics.PURCHASES))
        self.producer = Producer(settings.kafka.producer_conf(**{"linger.ms": 2}))
        self._failed: list[str] = []

    def _on_delivery(self, err, msg) -> None:
        if err is not None:
            self._failed.append(f"{msg.topic()}: {err}")

    def send(
        self, spec: topics.TopicSpec, key: str | bytes | None, value: bytes, partition: int = -1
    ) -> None:
        """Produce (partition -1: the partitioner's choice by key)."""
        name = topics.full_name(spec, self.prefix)
        while True:
            try:
                self.producer.produce(
                    name, value, key, partition=partition, on_delivery=self._on_delivery
                )
                return
            except BufferError:
                self.producer.poll(0.05)

    def send_raw(self, topic: str, key: bytes, value: bytes, partition: int) -> None:
        """A record to a topic by its broker-side name (table changelogs)."""
        while True:
            try:
                self.producer.produce(
                    topic, value, key, partition=partition, on_delivery=self._on_delivery
                )
                return
            except BufferError:
                self.producer.poll(0.05)

    def decision(self, record: dict) -> None:
        self.send(topics.DECISIONS, record["wallet"], self.decisions.encode(record))

    def security_event(self, record: dict) -> None:
        key = record.get("wallet") or record.get("ip") or record["event_id"]
        self.send(topics.SECURITY_EVENTS, key, self.security_events.encode(record))

    def dead_letter(self, origin: topics.TopicSpec, event, error: Exception) -> None:
        """Route a rejected record to ``<origin>.dlq`` with its bytes and the reason."""
        msg = event.message
        record = {
            "origin_topic": msg.topic,
            "origin_partition": msg.partition,
            "origin_offset": msg.offset,
            "original_key": msg.key,
            "original_value": msg.value,
            "error_class": type(error).__name__,
            "error_message": str(error)[:2000],
            "component": self.component,
            "failed_at": datetime.now(UTC),
        }
        log.warning(
            "dead-lettered %s[%s]@%s: %s", msg.topic, msg.partition, msg.offset, error
        )
        metrics.DEAD_LETTERS.labels(origin.name).inc()
        self.send(topics.dlq(origin), msg.key, self.dead_letters.encode(record))

    def flush(self, timeout: float = 30.0) -> None:
        remaining = self.producer.flush(timeout)
        failed, self._failed = self._failed, []
        if remaining or failed:
            raise OutputError(f"{remaining} undelivered, {len(failed)} failed: {failed[:3]}")
