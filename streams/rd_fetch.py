"""Records fetched by librdkafka for Faust's consumer (``streams/faust_compat.py``, override 14).

Faust's aiokafka driver fetches in Python: a fetch round over every assigned partition, its
request built and its answer parsed on a thread that shares the interpreter lock with the
agents. Measured at 1 000 purchases/s (docs/measurements.md, "latency analyses"): a bare Faust agent
spends ~230 us of that thread's time a record, as much as the agent's own loop. A librdkafka
consumer fetches on its own C threads; Python only takes the records.

``PartitionReader`` is such a consumer without a group: it reads the partitions it is told,
from the offsets it is told (``place``), and drops those it is told to (``drop``). Group
membership, assignments, commits and positions stay aiokafka's, as Faust and
``faust_compat`` use them; only the fetching moves. One thread owns the librdkafka consumer
(a confluent-kafka consumer called from two threads at once can hang): it applies what the
loop asked, polls, and files each record under its partition. The loop takes them with
``take``. A record is filed only at or after its partition's next expected offset and never
while a newer placement is pending, so a record fetched before a seek is never delivered after
it. A partition with ``max_buffered`` records waiting is paused in librdkafka until the loop
has taken half of them, then read again from its next offset not filed: Faust leaves
partitions unread for a while (its flow control, table recovery), and their records must not
fill memory.

A topic may have a ``Feed``: another reader of it in the process (the entity replica) that
takes the records this reader files, so the worker fetches each record once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Protocol

from confluent_kafka import Consumer, KafkaException, TopicPartition
from faust.types import TP

from infra.process import name_this_thread

log = logging.getLogger(__name__)

THREAD = "rd-fetch"
POLL_S = 0.05  # the longest a placement waits for the thread (it polls this long at most)
HIGHWATER_EVERY_S = 0.5


class Feed(Protocol):
    """Another reader of a topic that takes this reader's records of it instead of fetching
    them again (the entity replica: ``streams/entity_replica.py``). Both are called on the
    reading thread, and must not block it."""

    def feed(self, messages: list) -> None:
        """Records filed for the loop, in offset order per partition, as they are filed."""

    def unfeed(self, partitions: set[int]) -> None:
        """The feed of these partitions may stop or jump (dropped, placed anew, paused)."""

    def ended(self, ends: dict[int, int]) -> None:
        """Where the partitions of this topic this reader fetches (not paused) end, as its
        last fetch responses said (librdkafka's cached high watermarks), read after the
        records fetched before were filed and fed; once a reading round."""


# topic -> the feed given each record of it a reader files (the worker registers its entity
# replica: ``streams/context.py``)
FEEDS: dict[str, Feed] = {}


class PartitionReader:
    def __init__(self, conf: dict, loop: asyncio.AbstractEventLoop, *,
                 max_buffered: int = 2000) -> None:
        self._conf = conf
        self._loop = loop
        self.max_buffered = max_buffered
        self._lock = threading.Lock()
        self._placed: dict[TP, int] = {}  # partition -> the next offset it may deliver
        self._pending: dict[TP, int | None] = {}  # to apply: read from offset / stop (None)
        self._buffers: dict[TP, deque] = {}
        self._resume: set[TP] = set()  # paused partitions the loop has drained
        self.highwaters: dict[TP, int] = {}
        self.fetched_at: dict[TP, float] = {}  # wall time (s) of the last record or watermark
        self._ready = asyncio.Event()
        self._signalled = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=THREAD, daemon=True)
        self.error: BaseException | None = None
        self.feeds = FEEDS

    # -- the event loop's side ------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def waiting(self) -> int:
        """Records fetched and not taken yet."""
        with self._lock:
            return sum(map(len, self._buffers.values()))

    def placed(self) -> dict[TP, int]:
        with self._lock:
            return dict(self._placed)

    def place(self, tp: TP, offset: int) -> None:
        """Read ``tp`` from ``offset`` on; what was fetched before for it is dropped."""
        tp = TP(tp.topic, tp.partition)
        with self._lock:
            self._placed[tp] = offset
            self._pending[tp] = offset
            self._buffers.pop(tp, None)

    def drop(self, tps: Iterable[TP]) -> None:
        """Stop reading ``tps``; their fetched records are dropped."""
        with self._lock:
            for tp in tps:
                tp = TP(tp.topic, tp.partition)
                if self._placed.pop(tp, None) is None and tp not in self._pending:
                    continue
                self._pending[tp] = None
                self._buffers.pop(tp, None)

    async def wait(self, active: set | None, timeout: float) -> None:
        """Until records of the ``active`` partitions (all: None) are waiting, or ``timeout``
        seconds."""
        deadline = self._loop.time() + timeout
        while True:
            with self._lock:
                if self.error is not None:
                    raise self.error
                if any(buf for tp, buf in self._buffers.items()
                       if active is None or tp in active):
                    return
                self._ready.clear()
                self._signalled = False  # the next record filed wakes this loop
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                return
            try:
                async with asyncio.timeout(remaining):
                    await self._ready.wait()
            except TimeoutError:
                return

    def take(self, active: set | None, max_records: int) -> dict[TP, list]:
        """Up to ``max_records`` waiting records of the ``active`` partitions (all: None), in
        offset order per partition."""
        out: dict[TP, list] = {}
        with self._lock:
            tps = [tp for tp, buf in self._buffers.items()
                   if buf and (active is None or tp in active)]
            if not tps:
                return out
            share = max(1, max_records // len(tps))
            for tp in tps:
                buf = self._buffers[tp]
                n = min(share, len(buf))
                out[tp] = [buf.popleft() for _ in range(n)]
                if len(buf) <= self.max_buffered // 2:
                    self._resume.add(tp)
        return out

    # -- the reading thread ---------------------------------------------------------------

    def _run(self) -> None:
        name_this_thread(THREAD)
        try:
            consumer = Consumer(self._conf)
        except BaseException as exc:  # noqa: BLE001 (reported to the loop by ``wait``)
            self.error = exc
            self._loop.call_soon_threadsafe(self._ready.set)
            return
        assigned: set[TP] = set()
        paused: set[TP] = set()
        watermarks_at = 0.0
        try:
            while not self._stop.is_set():
                self._apply(consumer, assigned, paused)
                self._report_ends(consumer, assigned, paused)
                msg = consumer.poll(POLL_S)
                messages = [msg, *consumer.consume(999, 0)] if msg is not None else []
                if messages:
                    self._file(messages, consumer, paused)
                now = time.monotonic()
                if now - watermarks_at >= HIGHWATER_EVERY_S:
                    watermarks_at = now
                    self._watermarks(consumer, assigned)
        except BaseException as exc:  # noqa: BLE001
            log.exception("librdkafka reader stopped")
            self.error = exc
            self._loop.call_soon_threadsafe(self._ready.set)
        finally:
            consumer.close()

    def _apply(self, consumer: Consumer, assigned: set[TP], paused: set[TP]) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
            resume, self._resume = self._resume & paused, set()
        if resume:  # from the next offset not filed (librdkafka's position may be past it)
            with self._lock:
                at = {tp: self._placed[tp] for tp in resume if tp in self._placed}
            consumer.resume([TopicPartition(tp.topic, tp.partition) for tp in resume])
            paused -= resume
            for tp, offset in at.items():
                if tp not in pending:
                    pending[tp] = offset
        if not pending:
            return
        self._unfeed(pending)
        stop = [tp for tp, offset in pending.items() if offset is None and tp in assigned]
        if stop:
            consumer.incremental_unassign([TopicPartition(tp.topic, tp.partition) for tp in stop])
            assigned.difference_update(stop)
            paused.difference_update(stop)
        replaced = [tp for tp, offset in pending.items() if offset is not None and tp in paused]
        if replaced:  # its buffer was dropped with the placement
            consumer.resume([TopicPartition(tp.topic, tp.partition) for tp in replaced])
            paused.difference_update(replaced)
        new = []
        for tp, offset in pending.items():
            if offset is None:
                continue
            if tp in assigned:
                try:
                    consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
                    continue
                except KafkaException:  # not fetching yet: placed again from the start
                    consumer.incremental_unassign([TopicPartition(tp.topic, tp.partition)])
                    assigned.discard(tp)
            new.append(TopicPartition(tp.topic, tp.partition, offset))
        if new:
            consumer.incremental_assign(new)
            assigned.update(TP(t.topic, t.partition) for t in new)

    def _file(self, messages: list, consumer: Consumer, paused: set[TP]) -> None:
        full = []
        fed: dict[str, list] = {}
        filed = wake = False
        now = time.time()
        with self._lock:
            for m in messages:
                if m.error() is not None:
                    log.warning("librdkafka reader: %s", m.error())
                    continue
                tp = TP(m.topic(), m.partition())
                expected = self._placed.get(tp)
                offset = m.offset()
                if expected is None or offset < expected or tp in self._pending:
                    continue  # not ours any more, or fetched before a newer placement
                buf = self._buffers.get(tp)
                if buf is None:
                    buf = self._buffers[tp] = deque()
                if len(buf) >= self.max_buffered:  # fetched again from here once resumed
                    if tp not in paused and tp not in full:
                        full.append(tp)
                    continue
                buf.append(m)
                if tp.topic in self.feeds:
                    fed.setdefault(tp.topic, []).append(m)
                self._placed[tp] = offset + 1
                self.fetched_at[tp] = now
                filed = True
            if filed and not self._signalled:
                self._signalled = wake = True  # once until the loop waits again
        if full:
            consumer.pause([TopicPartition(tp.topic, tp.partition) for tp in full])
            paused.update(full)
            self._unfeed(full)
        if wake:
            self._loop.call_soon_threadsafe(self._ready.set)
        for topic, messages in fed.items():  # after the loop is woken: it takes them first
            self.feeds[topic].feed(messages)

    def _report_ends(self, consumer: Consumer, assigned: set[TP], paused: set[TP]) -> None:
        """``Feed.ended`` for each fed topic: where its partitions fetched end."""
        if not self.feeds:
            return
        by_topic: dict[str, dict[int, int]] = {}
        for tp in assigned:
            if tp.topic in self.feeds and tp not in paused:
                try:
                    _, high = consumer.get_watermark_offsets(
                        TopicPartition(tp.topic, tp.partition), cached=True)
                except KafkaException:
                    continue
                if high is not None and high >= 0:  # none yet: not fetched since assigned
                    by_topic.setdefault(tp.topic, {})[tp.partition] = high
        for topic, ends in by_topic.items():
            self.feeds[topic].ended(ends)

    def _unfeed(self, tps: Iterable[TP]) -> None:
        """Tell the feeds of ``tps``' topics that their records may stop or jump there."""
        by_topic: dict[str, set[int]] = {}
        for tp in tps:
            if tp.topic in self.feeds:
                by_topic.setdefault(tp.topic, set()).add(tp.partition)
        for topic, partitions in by_topic.items():
            self.feeds[topic].unfeed(partitions)

    def _watermarks(self, consumer: Consumer, assigned: set[TP]) -> None:
        now = time.time()
        for tp in assigned:
            try:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(tp.topic, tp.partition), cached=True)
            except KafkaException:
                continue
            if high >= 0:
                self.highwaters[tp] = high
                self.fetched_at.setdefault(tp, now)
