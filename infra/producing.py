"""The one way Sentinel produces to Kafka with confluent-kafka: wait for room while the local
queue is full, remember failed deliveries, flush or raise. Every producer of records that
must not be lost (the worker's outputs, the chain listener, the sinks' dead letters, the
publisher under the gateway) goes through ``Deliveries``; ``dead_letter`` builds the one
``DeadLetter`` record shape (``schemas/dead_letter.avsc``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Producer


class OutputError(RuntimeError):
    """The broker did not acknowledge every record produced since the last flush."""


class Deliveries:
    def __init__(self, producer: Producer, backoff_s: float = 0.05):
        self.producer = producer
        self.backoff_s = backoff_s
        self.failed: list[str] = []

    def on_delivery(self, err, msg) -> None:
        """The default report: a failed record is remembered (``failed``)."""
        if err is not None:
            self.failed.append(f"{msg.topic()}: {err}")

    def produce(self, topic: str, value: bytes | None, key: bytes | str | None, *,
                partition: int = -1, headers: list | None = None,
                on_delivery: Callable[[Any, Any], None] | None = None,
                block: bool = True) -> None:
        """Produce; while the local queue is full, serve delivery reports and retry (or,
        with ``block=False``, let ``BufferError`` through to the caller)."""
        report = on_delivery or self.on_delivery
        while True:
            try:
                self.producer.produce(topic, value, key, partition=partition, headers=headers,
                                      on_delivery=report)
                return
            except BufferError:
                if not block:
                    raise
                self.producer.poll(self.backoff_s)

    def flush_or_raise(self, timeout: float = 30.0) -> None:
        """Return once every record is acknowledged; ``OutputError`` otherwise."""
        remaining = self.producer.flush(timeout)
        failed, self.failed = self.failed, []
        if remaining or failed:
            raise OutputError(f"{remaining} unacknowledged, {len(failed)} failed: {failed[:3]}")


def dead_letter(topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
                error: BaseException, component: str) -> dict[str, Any]:
    """A ``DeadLetter`` record: the original key and bytes, the reason, where it came from."""
    return {
        "origin_topic": topic,
        "origin_partition": partition,
        "origin_offset": offset,
        "original_key": key,
        "original_value": value,
        "error_class": type(error).__name__,
        "error_message": str(error)[:2000],
        "component": component,
        "failed_at": datetime.now(UTC),
    }
