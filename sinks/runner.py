"""The sink process loop on confluent-kafka (not Faust: sinks run in their own processes).

Each round: consume up to ``batch_size`` messages (the broker answers once records are
there), decode them, send undecodable ones to ``<topic>.dlq``, write the rest to the sink
(retrying retryable errors with backoff while the partitions are paused), wait for the dead
letters to be acknowledged, then commit the offsets. At-least-once: a batch is committed only
after it was written; the sinks are idempotent, so redelivery gives no duplicate.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    IsolationLevel,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

from infra import admin, topics
from infra.logsafe import scrub
from infra.settings import Settings
from schemas.codec import AvroCodec, DecodeError
from schemas.registry import registry_from_settings
from sinks import metrics
from sinks.base import RETRYABLE, BatchSink, Record, SinkBackpressureError, SinkRecordError
from sinks.config import SinkSettings
from sinks.deadletter import DeadLetters
from sinks.stalls import Key, StallWatch

log = logging.getLogger(__name__)


class Stopped(Exception):
    """The loop was asked to stop while a batch was still unwritten (it stays uncommitted)."""


@dataclass
class LoopStats:
    batches: int = 0
    written: int = 0
    dead_letters: int = 0
    retries: int = 0
    commit_failures: int = 0
    stalls: int = 0


class SinkLoop:
    """Consume ``sink.topics`` and feed ``sink`` until ``stop()`` (or SIGTERM in a CLI)."""

    def __init__(
        self,
        settings: Settings,
        sink: BatchSink,
        sink_settings: SinkSettings | None = None,
        group_id: str | None = None,
    ):
        self.settings = settings
        self.sink = sink
        self.conf = sink_settings or SinkSettings()
        prefix = settings.kafka.topic_prefix
        self.group_id = group_id or f"{prefix}sentinel-sink-{sink.name}"
        registry = registry_from_settings(settings)
        self._specs = {topics.full_name(s, prefix): s for s in sink.topics}
        self._codecs = {name: AvroCodec.for_topic(registry, s) for name, s in self._specs.items()}
        self.dead_letters = DeadLetters(registry, self._specs, prefix, f"sink-{sink.name}")
        self._stop = threading.Event()
        self._replay_until: dict[tuple[str, int], int] = {}
        self.error: BaseException | None = None
        self.failing = False  # backing off after a failed write or setup
        self.stats = LoopStats()
        self.consumer: Consumer | None = None
        self.producer: Producer | None = None
        self._stalls = StallWatch(self.conf.stall_s)
        self._ends: tuple[dict[Key, int], dict[TopicPartition, Future]] | None = None
        self._admin: AdminClient | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    @property
    def topic_names(self) -> list[str]:
        """The broker-side names of the topics it consumes."""
        return list(self._specs)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """The loop; a fatal error is kept in ``self.error`` and raised."""
        self._recovered()
        try:
            self._run()
        except BaseException as exc:
            self.error = exc
            metrics.ERRORS.labels(self.sink.name, "fatal").inc()
            log.exception("sink %s failed", self.sink.name)
            raise

    def _setup(self) -> None:
        """``sink.setup()``, retried while the backend is unavailable (start-up order)."""
        attempt = 0
        while True:
            try:
                self.sink.setup()
                self._recovered()
                return
            except RETRYABLE as exc:
                self._failed("retryable")
                delay = self._delay(exc, attempt)
                attempt += 1
                log.warning("sink %s setup: %s; retry in %.2fs", self.sink.name, exc, delay)
                if self._stop.wait(delay):
                    raise Stopped from exc

    def _run(self) -> None:
        try:
            self._setup()
        except Stopped:
            return
        conf = {**self.settings.kafka.consumer_conf(self.group_id), "on_commit": self._committed,
                "statistics.interval.ms": int(self.conf.stall_s * 1000 / 3), "stats_cb": self._stats}
        self.consumer = Consumer(conf)
        self.producer = Producer(self.settings.kafka.producer_conf())
        self.dead_letters.producer = self.producer
        if self.sink.rewind_ms > 0:
            self.consumer.subscribe(list(self._specs), on_assign=self._rewind)
        else:
            self.consumer.subscribe(list(self._specs))
        log.info("sink %s consuming %s as %s", self.sink.name, list(self._specs), self.group_id)
        try:
            while not self.stopping:
                messages = self.consumer.consume(self.conf.batch_size, self.conf.poll_timeout_s)
                if messages:
                    self._round(messages)
                self._check_stalls()
        except Stopped:
            log.info("sink %s stopped with a batch unwritten (not committed)", self.sink.name)
        finally:
            self.consumer.close()
            self.producer.flush(10)
            self.sink.close()

    # -- one round ---------------------------------------------------------------------------

    def _round(self, messages: list[Message]) -> None:
        started = time.perf_counter()
        data = [m for m in messages if m.error() is None]
        for m in messages:
            if m.error() is not None:
                log.warning("consumer error on %s: %s", m.topic(), m.error())
        records = self._decode(data)
        refused = self._write(records) if records else 0
        self._flush_dead_letters()
        self._commit(data)
        self.stats.batches += 1
        self.stats.written += len(records) - refused
        metrics.BATCH_SECONDS.labels(self.sink.name).observe(time.perf_counter() - started)
        metrics.RECORDS.labels(self.sink.name).inc(len(records) - refused)

    def _decode(self, messages: Sequence[Message]) -> list[Record]:
        records: list[Record] = []
        for m in messages:
            name, partition, offset = _position(m)
            try:
                value = self._codecs[name].decode(m.value())
            except DecodeError as exc:
                self._dead_letter(name, partition, offset, m.key(), m.value(), exc)
                continue
            spec = self._specs[name]
            replayed = offset < self._replay_until.get((name, partition), -1)
            kind, ts = m.timestamp()
            at = ts if kind != TIMESTAMP_NOT_AVAILABLE and ts > 0 else None
            records.append(Record(spec, value, m.key(), name, partition, offset,
                                  m.value(), replayed, at))  # fmt: skip
        return records

    def _write(self, records: Sequence[Record]) -> int:
        """Write with retries; isolate and dead-letter the records the sink refuses.
        Returns how many were refused."""
        attempt = 0
        while True:
            try:
                with metrics.WRITE_SECONDS.labels(self.sink.name).time():
                    self.sink.write(records)
                self._recovered()
                return 0
            except RETRYABLE as exc:
                self._failed("retryable")
                if self.stopping:
                    raise Stopped from exc
                delay = self._delay(exc, attempt)
                attempt += 1
                self.stats.retries += 1
                metrics.RETRIES.labels(self.sink.name).inc()
                log.warning("sink %s: %s; retry %d in %.2fs", self.sink.name, scrub(exc), attempt,
                            delay)  # fmt: skip
                self._wait_paused(delay)
            except SinkRecordError as exc:
                if len(records) == 1:
                    metrics.ERRORS.labels(self.sink.name, "refused").inc()
                    r = records[0]
                    self._dead_letter(r.topic, r.partition, r.offset, r.key, r.raw, exc)
                    return 1
                mid = len(records) // 2
                return self._write(records[:mid]) + self._write(records[mid:])

    def _failed(self, kind: str) -> None:
        self.failing = True
        metrics.ERRORS.labels(self.sink.name, kind).inc()
        metrics.FAILING.labels(self.sink.name).set(1)

    def _recovered(self) -> None:
        self.failing = False
        metrics.FAILING.labels(self.sink.name).set(0)

    def _delay(self, exc: Exception, attempt: int) -> float:
        if isinstance(exc, SinkBackpressureError):
            return exc.retry_after
        return min(self.conf.backoff_max_s, self.conf.backoff_initial_s * 2**attempt)

    def _wait_paused(self, delay: float) -> None:
        """Back off without leaving the group: pause, keep polling, give back what arrives.

        Resumes every partition it paused, those a rebalance took away meanwhile included:
        librdkafka keeps a partition's pause across a rebalance, so one paused here, revoked
        (a member joining, a session timeout) and assigned again after the backoff ended would
        stay paused: the sink would never read it again."""
        assert self.consumer is not None
        paused = self.consumer.assignment()
        self.consumer.pause(paused)
        deadline = time.monotonic() + delay
        try:
            while not self.stopping and (left := deadline - time.monotonic()) > 0:
                arrived = self.consumer.consume(self.conf.batch_size, min(left, 0.1))
                self._seek_back(arrived)
        finally:
            self.consumer.resume(_union(paused, self.consumer.assignment()))

    def _seek_back(self, arrived: Sequence[Message]) -> None:
        """Messages delivered while backing off (after a rebalance) are read again later."""
        first: dict[tuple[str, int], int] = {}
        for m in arrived:
            if m.error() is None:
                topic, partition, offset = _position(m)
                first[(topic, partition)] = min(first.get((topic, partition), offset), offset)
        for (topic, partition), offset in first.items():
            assert self.consumer is not None
            self.consumer.seek(TopicPartition(topic, partition, offset))

    def _rewind(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Start ``rewind_ms`` of record time before each committed offset; what lies in
        between is marked ``replayed`` (the sink rebuilds state from it, acts on nothing)."""
        committed = consumer.committed(partitions, timeout=10)
        since = int(time.time() * 1000) - self.sink.rewind_ms
        by_time = consumer.offsets_for_times(
            [TopicPartition(p.topic, p.partition, since) for p in partitions], timeout=10
        )
        start = []
        for done, old in zip(committed, by_time, strict=True):
            offset = done.offset
            if offset >= 0:
                self._replay_until[(done.topic, done.partition)] = offset
                if 0 <= old.offset < offset:
                    offset = old.offset
            start.append(TopicPartition(done.topic, done.partition, offset))
        log.info("sink %s: rewound to %s", self.sink.name, [(p.partition, p.offset) for p in start])
        consumer.assign(start)

    # -- partitions that stopped moving ------------------------------------------------------

    def _stats(self, report: str) -> None:
        """librdkafka's statistics (during a poll, on this thread): where each partition is."""
        now = time.monotonic()
        if self.failing:
            self._stalls.quiet(now)  # paused on purpose while backing off
        else:
            self._stalls.observe(json.loads(report), now)

    def _check_stalls(self) -> None:
        """Ask the broker where the candidates end (without waiting for the answer); restart
        those still stalled once it has answered."""
        if self.failing:
            self._ends = None  # backing off: asked again once it is over
            return
        if self._ends is None:
            if asked := self._stalls.candidates():
                self._admin = self._admin or admin.admin_client(self.settings)
                spec = {TopicPartition(t, p): OffsetSpec.latest() for t, p in asked}
                self._ends = asked, self._admin.list_offsets(
                    spec, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=10)
            return
        asked, futures = self._ends
        if not all(f.done() for f in futures.values()):
            return
        self._ends = None
        ends = {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()
                if f.exception() is None}  # fmt: skip
        if stalled := self._stalls.stalled(asked, ends):
            self._restart_stalled(stalled, ends)

    def _restart_stalled(self, stalled: dict[Key, int], ends: dict[Key, int]) -> None:
        """Resume and seek each stalled partition where it was: its fetching restarts from
        whatever state it was stuck in (``sinks/stalls.py``)."""
        assert self.consumer is not None
        for (topic, partition), offset in stalled.items():
            log.warning("sink %s: %s[%d] has not moved from %d for %.0f s with records up to %d;"
                        " restarting it", self.sink.name, topic, partition, offset,
                        self.conf.stall_s, ends[(topic, partition)])  # fmt: skip
            self.stats.stalls += 1
            metrics.STALLS.labels(self.sink.name).inc()
            position = TopicPartition(topic, partition, offset)
            try:
                self.consumer.resume([position])
                self.consumer.seek(position)
            except KafkaException as exc:  # e.g. revoked meanwhile: nothing to restart
                log.warning("sink %s: restarting %s[%d] failed: %s", self.sink.name, topic,
                            partition, exc)  # fmt: skip

    # -- dead letters and commits ----------------------------------------------------------

    def _dead_letter(self, topic: str, partition: int, offset: int, key: bytes | None,
                     value: bytes | None, error: Exception) -> None:
        self.dead_letters.send(topic, partition, offset, key, value, error)
        self.stats.dead_letters += 1
        metrics.DEAD_LETTERS.labels(self.sink.name, self._specs[topic].name).inc()

    def _flush_dead_letters(self) -> None:
        """Dead letters must be acknowledged before their offsets are committed."""
        if not self.dead_letters.flush(give_up=lambda: self.stopping):
            raise Stopped("dead letters unacknowledged")

    def _commit(self, messages: Sequence[Message]) -> None:
        ends: dict[tuple[str, int], int] = {}
        for m in messages:
            topic, partition, offset = _position(m)
            ends[(topic, partition)] = max(ends.get((topic, partition), -1), offset + 1)
        if not ends:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in ends.items()]
        assert self.consumer is not None
        try:
            # Asynchronous: a synchronous commit waits for the group coordinator however long
            # it takes, and meanwhile the loop does not poll, so librdkafka cannot serve the
            # group's rebalance after a broker restart: in a chaos run (2026-12-05) the
            # PostgreSQL sink sat in one commit for 5 min, left its group for not polling,
            # and 339 of 465 decisions were never stored. The result comes to ``_committed``
            # during a later poll; a commit lost is a redelivery, and writes are idempotent.
            self.consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:  # e.g. revoked in a rebalance: redelivered, deduped
            self._committed(exc.args[0] if exc.args else exc, offsets)

    def _committed(self, err, partitions: list[TopicPartition]) -> None:
        """The outcome of a commit (librdkafka's ``on_commit``, called during a poll)."""
        if err is None:
            return
        self.stats.commit_failures += 1
        log.warning("sink %s: commit failed (%s); redelivery follows", self.sink.name, err)


def _union(*lists: list[TopicPartition]) -> list[TopicPartition]:
    """The partitions of ``lists``, each once (by topic and partition)."""
    seen: dict[tuple[str, int], TopicPartition] = {}
    for tp in (tp for partitions in lists for tp in partitions):
        seen.setdefault((tp.topic, tp.partition), TopicPartition(tp.topic, tp.partition))
    return list(seen.values())


def _position(m: Message) -> tuple[str, int, int]:
    """Topic, partition and offset of a consumed message without an error (librdkafka sets
    all three on those; the stubs say each may be None)."""
    topic, partition, offset = m.topic(), m.partition(), m.offset()
    assert topic is not None and partition is not None and offset is not None
    return topic, partition, offset


def run_until_signal(loops: Sequence[SinkLoop]) -> int:
    """Run ``loops`` in threads until SIGTERM/SIGINT (main thread only) or one of them fails;
    stop them all cleanly. Returns 0, or 1 when a loop failed."""
    threads = [threading.Thread(target=_quiet(loop), name=loop.sink.name) for loop in loops]

    def _stop(signum, _frame) -> None:
        log.info("signal %s: stopping %d sink loop(s)", signum, len(loops))
        for loop in loops:
            loop.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(0.2)
        if any(not t.is_alive() for t in threads):  # one ended: stop the others too
            for loop in loops:
                loop.stop()
    return 1 if any(loop.error for loop in loops) else 0


def _quiet(loop: SinkLoop):
    def target() -> None:
        try:
            loop.run()
        except BaseException:  # logged and kept in loop.error
            pass

    return target
