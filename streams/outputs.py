"""What agents send: decisions, security events and dead letters, through ONE confluent-kafka
producer (about twice Faust's own ``send`` rate, DESIGN.md "Performance facts").

Agents call ``flush()`` at the end of each batch, before Faust acknowledges the batch's
offsets: a crash can repeat a batch's outputs (at-least-once; sinks dedupe by natural key) but
never lose them. Producing and flushing go through ``infra.producing.Deliveries``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from confluent_kafka import Producer

from infra import topics
from infra.logsafe import scrub
from infra.producing import Deliveries, OutputError, dead_letter
from infra.settings import Settings
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from streams import metrics
from streams.redelivery import source_header

__all__ = ["OutputError", "Outputs"]

log = logging.getLogger(__name__)


# How long librdkafka gathers records for a request. A batch produces its decisions at once,
# at its end, so they need no linger to travel together: with 2 ms (until 2026-12-06) every
# decision waited those 2 ms before its request left (at 1 000 /s a batch holds ~10
# purchases). With 0 the first record leaves at once and the rest of the batch follows in the
# requests after it (up to 5 in flight). Measured with 10-record bursts, 300 each, three
# alternated pairs under load 7-9: acknowledged p50 3.1-7.1 ms against 7.5-8.1 with 2 ms;
# 500-record bursts (a backlog's batch) cost the same CPU a record within the noise.
OUTPUTS_LINGER_MS = 0


class Outputs:
    def __init__(self, settings: Settings, component: str):
        self.component = component
        self.prefix = settings.kafka.topic_prefix
        self.registry = registry_from_settings(settings)
        self.decisions = AvroCodec.for_topic(self.registry, topics.DECISIONS)
        self.security_events = AvroCodec.for_topic(self.registry, topics.SECURITY_EVENTS)
        self._dead_letter_codecs: dict[str, AvroCodec] = {}
        self.producer = Producer(settings.kafka.producer_conf(**{"linger.ms": OUTPUTS_LINGER_MS}))
        self.deliveries = Deliveries(self.producer)
        self._marks()

    def _marks(self) -> None:
        # records not reported yet, by the mark they were produced after (reports are served
        # by whichever thread polls or flushes: the lock keeps the counts)
        self._lock = threading.Lock()
        self._unreported: dict[int, int] = {}
        self._mark = 0
        self._report = self._reporter(0)

    def _reporter(self, mark: int) -> Callable[[Any, Any], None]:
        on_delivery, unreported, lock = self.deliveries.on_delivery, self._unreported, self._lock

        def report(err, msg) -> None:
            on_delivery(err, msg)
            with lock:
                if unreported[mark] > 1:
                    unreported[mark] -= 1
                else:
                    del unreported[mark]

        return report

    def _produce(self, topic: str, value: bytes | None, key: str | bytes | None, partition: int,
                 headers: list | None = None) -> None:
        mark, report, unreported = self._mark, self._report, self._unreported
        with self._lock:
            unreported[mark] = unreported.get(mark, 0) + 1
        try:
            self.deliveries.produce(topic, value, key, partition=partition, headers=headers,
                                    on_delivery=report)
        except BaseException:
            report(None, None)  # not produced: nothing to wait for
            raise

    def send(self, spec: topics.TopicSpec, key: str | bytes | None, value: bytes,
             partition: int = -1, headers: list | None = None) -> None:
        """Produce (partition -1: the partitioner's choice by key)."""
        self._produce(topics.full_name(spec, self.prefix), value, key, partition, headers)

    def send_raw(self, topic: str, key: bytes, value: bytes | None, partition: int) -> None:
        """A record to a topic by its broker-side name (table changelogs)."""
        self._produce(topic, value, key, partition)

    def mark(self) -> int:
        """A mark after every record produced so far: ``delivered(mark)`` says whether they
        are all acknowledged."""
        mark = self._mark
        self._mark = mark + 1
        self._report = self._reporter(mark + 1)
        return mark

    def decision(self, record: dict, source) -> None:
        """A decision, on the partition numbered like its purchase's (``source``: the
        purchase's Kafka message), with the purchase's offset in a header: what a worker
        reads back to know which redelivered purchases are decided (``streams/redelivery``)."""
        self.send(topics.DECISIONS, record["wallet"], self.decisions.encode(record),
                  partition=source.partition, headers=source_header(source.offset))

    def security_event(self, record: dict) -> None:
        key = record.get("wallet") or record.get("ip") or record["event_id"]
        self.send(topics.SECURITY_EVENTS, key, self.security_events.encode(record))

    def dead_letter(self, origin: topics.TopicSpec, event, error: Exception) -> None:
        """Route a rejected record to ``<origin>.dlq`` with its bytes and the reason, encoded
        under that dead-letter topic's own subject."""
        msg = event.message
        record = dead_letter(msg.topic, msg.partition, msg.offset, msg.key, msg.value, error,
                             self.component)
        log.warning("dead-lettered %s[%s]@%s: %s: %.300s", msg.topic, msg.partition,
                    msg.offset, type(error).__name__, scrub(error))
        metrics.DEAD_LETTERS.labels(origin.name).inc()
        dlq = topics.dlq(origin)
        codec = self._dead_letter_codecs.get(dlq.name)
        if codec is None:
            codec = self._dead_letter_codecs[dlq.name] = AvroCodec.for_topic(self.registry, dlq)
        self.send(dlq, msg.key, codec.encode(record))

    def delivered(self, mark: int | None = None) -> bool:
        """Whether every record produced so far (or before ``mark``, ``mark()``) is
        acknowledged, without waiting: serves the delivery reports due (``poll(0)``), then
        the producer holds none (``len``: records queued, in flight or with a report not
        served), or none produced before the mark is unreported. A failed record counts as
        not delivered: ``flush`` raises it."""
        self.producer.poll(0)
        if self.deliveries.failed:
            return False
        if mark is None:
            return not len(self.producer)
        with self._lock:
            return not self._unreported or min(self._unreported) > mark

    def flush(self, timeout: float = 30.0) -> None:
        """Return once every record is acknowledged. While the broker is away the records stay
        queued (librdkafka retries them): keep waiting, so the batch is not acknowledged
        without its outputs. A record that failed for good raises ``OutputError``."""
        while (remaining := self.producer.flush(timeout)) and not self.deliveries.failed:
            log.warning("%d records not acknowledged within %.0f s (broker away?): waiting",
                        remaining, timeout)  # fmt: skip
        failed, self.deliveries.failed = self.deliveries.failed, []
        if failed:  # (not "remaining": agents share the producer and keep producing)
            raise OutputError(f"{len(failed)} records failed: {failed[:3]}")
