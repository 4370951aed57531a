"""``Publisher``: validated, Avro-encoded records to Kafka with a delivery report per record.

The producer client for backend services that prefer Kafka to HTTP, and the engine under the
webhook gateway. Every ``publish_*`` validates at the edge (``connectors.validation``, raising
``ValidationFailed`` before anything is sent), encodes with the topic's ``AvroCodec`` and returns
a ``concurrent.futures.Future`` that resolves to a ``Delivery`` once the broker acknowledged the
record (idempotent producer, ``acks=all``) or fails with ``DeliveryFailed``. A background thread
serves delivery callbacks, so producing is batched by librdkafka (``linger.ms``), never flushed
per record. ``asyncio.wrap_future`` bridges a future into an event loop.

A future not acknowledged within ``delivery_timeout_ms`` fails, but its record stays with
librdkafka for ``RECORD_LIFETIME_MS`` and may still arrive (a retry is then a duplicate that
consumers drop by id): a record timed out *inside* librdkafka lets its idempotent producer
re-sequence, and after a broker restart later records were reported delivered that were never
written (seen in the chaos run; librdkafka issue 4134).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from datetime import datetime
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from pydantic import BaseModel

from connectors.base import Delivery, DeliveryFailed, FieldError, RecordKind, ValidationFailed
from connectors.security_events import event_key
from connectors.validation import AUTH_EVENT, KINDS, LABEL, PURCHASE, EventTimeBounds, parse
from infra.producing import Deliveries
from infra.settings import Settings
from infra.topics import SECURITY_EVENTS, TopicSpec, full_name
from schemas.codec import AvroCodec, EncodeError
from schemas.registry import registry_from_settings

Record = dict[str, Any] | BaseModel | bytes | str
DEFAULT_DELIVERY_TIMEOUT_MS = 30_000  # the caller's wait for an acknowledgement
RECORD_LIFETIME_MS = 300_000  # librdkafka's own message.timeout.ms (its default): see above
log = logging.getLogger(__name__)


class Publisher:
    """Validated records to Sentinel's topics; ``close()`` (or ``with``) flushes and stops."""

    def __init__(
        self,
        settings: Settings,
        *,
        delivery_timeout_ms: int = DEFAULT_DELIVERY_TIMEOUT_MS,
        poll_thread: bool = True,
        future_factory: Callable[[], Any] = Future,
        **producer_conf: str | int | bool,
    ):
        """``poll_thread=False``: the owner serves delivery reports by calling ``poll``
        (``DeliveryPump`` does, in an event loop, with ``future_factory=loop.create_future``).
        """
        self._prefix = settings.kafka.topic_prefix
        self.bounds = EventTimeBounds.from_settings(settings)
        registry = registry_from_settings(settings)
        self._specs = (*(kind.spec for kind in KINDS.values()), SECURITY_EVENTS)
        self._codecs = {spec.name: AvroCodec.for_topic(registry, spec) for spec in self._specs}
        self._timeout_s = delivery_timeout_ms / 1000
        lifetime = max(RECORD_LIFETIME_MS, delivery_timeout_ms)
        conf = {"message.timeout.ms": lifetime, **producer_conf}
        self._producer = Producer(settings.kafka.producer_conf(**conf))
        self._waiting: list[tuple[float, int, Any]] = []  # heap of (deadline, n, future)
        self._waiting_lock = threading.Lock()
        self._numbers = itertools.count()
        self._deliveries = Deliveries(self._producer)
        self._new_future = future_factory
        self._running = poll_thread
        self._poller = threading.Thread(target=self._poll, name="publisher-poll", daemon=True)
        if poll_thread:
            self._poller.start()

    # ------------------------------------------------------------ publishing

    def publish(
        self, kind: RecordKind, data: Record, *, now: datetime | None = None
    ) -> Future[Delivery]:
        """Validate ``data`` as ``kind`` and send it; ``ValidationFailed`` if it is bad."""
        return self.send(kind, parse(kind, data, now, self.bounds), now=now)

    def publish_purchase(self, data: Record, *, now: datetime | None = None) -> Future[Delivery]:
        """A purchase; ``ingested_at`` is set to ``now`` (default: the clock)."""
        return self.publish(PURCHASE, data, now=now)

    def publish_auth_event(self, data: Record, *, now: datetime | None = None) -> Future[Delivery]:
        return self.publish(AUTH_EVENT, data, now=now)

    def publish_label(self, data: Record, *, now: datetime | None = None) -> Future[Delivery]:
        return self.publish(LABEL, data, now=now)

    def send(
        self, kind: RecordKind, record: Any, *, now: datetime | None = None, block: bool = False
    ) -> Future[Delivery]:
        """Send an already validated ``kind.model`` instance.

        With ``block``, wait while the local queue is full instead of failing the record.
        """
        value = self._encode(kind.spec, record.to_avro(now))
        return self._produce(kind.spec, kind.key(record), value, kind.record_id(record), block)

    def publish_security_event(self, event: dict[str, Any]) -> Future[Delivery]:
        """A SecurityEvent record (see ``connectors.security_events.security_event``)."""
        value = self._encode(SECURITY_EVENTS, event)
        return self._produce(SECURITY_EVENTS, event_key(event), value, event["event_id"])

    # ------------------------------------------------------------ lifecycle

    def flush(self, timeout: float = 30.0) -> int:
        """Wait until every record is acknowledged or failed; returns how many are left."""
        return self._producer.flush(timeout)

    def poll(self, timeout: float = 0.0) -> int:
        """Serve delivery reports (callbacks run in the calling thread) and fail the futures
        past their delivery timeout; returns how many reports were served."""
        served = self._producer.poll(timeout)
        self._expire(time.monotonic())
        return served

    def in_flight(self) -> int:
        """Records (and reports) not yet served."""
        return len(self._producer)

    def broker_reachable(self, timeout: float = 1.0) -> bool:
        """Whether a broker answers a metadata request within ``timeout`` seconds."""
        try:
            self._producer.list_topics(timeout=timeout)
        except KafkaException:
            return False
        return True

    def missing_topics(self, timeout: float = 5.0) -> list[str]:
        """Topics this publisher writes to that the broker does not have."""
        existing = self._producer.list_topics(timeout=timeout).topics
        names = (full_name(spec, self._prefix) for spec in self._specs)
        return [name for name in names if name not in existing]

    def close(self, timeout: float | None = None) -> int:
        """Flush (by default for up to the delivery timeout: whatever is left by then was
        already reported failed to its caller), then stop the poll thread; returns how many
        records were left unsent. Those are purged from librdkafka, so it stops retrying a
        broker that is away (each caller was told "failed" and retries elsewhere)."""
        left = self.flush(self._timeout_s if timeout is None else timeout)
        self._running = False
        if self._poller.is_alive():
            self._poller.join(timeout=5)
        if left:
            log.warning("closing with %d record(s) the broker never acknowledged: dropped "
                        "(their callers were told they failed)", left)  # fmt: skip
            self._producer.purge()
            self._producer.flush(1)  # serve the purge reports
            self._expire(float("inf"))
        return left

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ internals

    def _poll(self) -> None:
        while self._running:
            try:
                self.poll(0.05)
            except Exception:  # a callback raised: report it, keep serving the others
                log.exception("delivery callback failed")

    def _expire(self, now: float) -> None:
        """Fail the futures whose delivery timeout passed (their records stay with librdkafka)."""
        waiting = self._waiting
        while waiting and waiting[0][0] <= now:
            with self._waiting_lock:
                if not waiting or waiting[0][0] > now:
                    return
                _, _, future = heapq.heappop(waiting)
            if future.done():
                continue
            failure = DeliveryFailed(f"not acknowledged within {self._timeout_s:g} s",
                                     retriable=True)  # fmt: skip
            try:
                future.set_exception(failure)
            except (InvalidStateError, asyncio.InvalidStateError):  # resolved meanwhile
                pass

    def _encode(self, spec: TopicSpec, record: dict[str, Any]) -> bytes:
        try:
            return self._codecs[spec.name].encode(record)
        except EncodeError as exc:
            raise ValidationFailed([FieldError("body", str(exc), "schema")]) from None

    def _produce(
        self, spec: TopicSpec, key: str, value: bytes, record_id: str, block: bool = False
    ) -> Future[Delivery]:
        future = self._new_future()
        topic = full_name(spec, self._prefix)

        def report(err: KafkaError | None, msg: Message) -> None:
            if future.done():  # the caller stopped waiting and cancelled it
                return
            try:
                if err is None:
                    delivery = Delivery(record_id, topic, msg.partition(), msg.offset(), key)
                    future.set_result(delivery)
                else:
                    retriable = err.retriable() or err.code() == KafkaError._MSG_TIMED_OUT
                    future.set_exception(DeliveryFailed(err.str(), retriable=retriable))
            except (InvalidStateError, asyncio.InvalidStateError):  # cancelled meanwhile
                pass

        try:
            self._produce_blocking(topic, value, key.encode(), report, block)
            with self._waiting_lock:
                deadline = time.monotonic() + self._timeout_s
                heapq.heappush(self._waiting, (deadline, next(self._numbers), future))
        except BufferError:
            future.set_exception(DeliveryFailed("producer queue is full", retriable=True))
        except KafkaException as exc:
            future.set_exception(DeliveryFailed(str(exc), retriable=False))
        return future

    def _produce_blocking(self, topic: str, value: bytes, key: bytes, report, block: bool) -> None:
        """Produce; with ``block``, wait for room while the local queue is full."""
        self._deliveries.produce(topic, value, key, on_delivery=report, block=block)


class DeliveryPump:
    """Serves a ``Publisher``'s delivery reports inside an event loop (no thread, no GIL
    hand-off): ``kick()`` after each send; it polls every millisecond while records are in
    flight and sleeps when none are. Build the publisher with ``poll_thread=False`` and
    ``future_factory=loop.create_future`` so reports complete asyncio futures directly.
    """

    def __init__(self, publisher: Publisher, interval_s: float = 0.001):
        self._publisher = publisher
        self._interval_s = interval_s
        self._wake = asyncio.Event()

    def kick(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            if not self._publisher.in_flight():
                self._wake.clear()
                await self._wake.wait()
            try:
                self._publisher.poll(0)
            except Exception:  # a callback raised: report it, keep serving the others
                log.exception("delivery callback failed")
            await asyncio.sleep(self._interval_s)

    async def drain(self, timeout_s: float) -> int:
        """Serve reports until nothing is in flight or ``timeout_s`` passed; returns what's left."""
        deadline = time.monotonic() + timeout_s
        while self._publisher.in_flight() and time.monotonic() < deadline:
            self._publisher.poll(0)
            await asyncio.sleep(0.005)
        return self._publisher.in_flight()
