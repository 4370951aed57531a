"""Purchases redelivered with their decision already on the decisions topic: not decided again.

Why: the worker sends a batch's decisions, waits for the broker's ack, and only then writes
the wallet states (whose ``applied`` ids make ``scoring.already_decided`` skip a redelivery);
Faust commits the offsets later still. A worker killed after the ack but before its state
write or the commit gets the batch redelivered (to itself restarted, or to another worker
after a rebalance) with states that do not say "applied": scored again, now seeing auth
events or crowd aggregates applied in between, the purchase got a second, different decision
(the chaos run's ``duplicated``, issue 12).

How: each decision goes to the decisions partition numbered like its purchase's partition
(the two topics have as many partitions, ``infra/topics.py``), with the purchase's offset in a
header (``SOURCE_OFFSET``). The first batch of a purchases partition in a new consumer
generation starts at the group's committed offset C (``faust_compat.OffsetGuard``); before it
is scored, the worker reads that decisions partition back from the first purchase's timestamp
minus ``SENTINEL_REDELIVERY_LOOKBACK_MS`` to its end, and keeps purchase id -> offset of the
decisions of purchases at offsets >= C. A purchase found there is applied to its wallet state
(the state becomes what the first run would have written) and not decided again: nothing is
sent, the decision on the topic stands. Cost: one dict probe per purchase; the read only at an
assignment; the map holds only decisions the commit did not cover, at most ``CAP`` per
partition, and is dropped once the partition has passed the highest offset in it.

Bound: the decision of a purchase at an offset >= C was produced after purchase C was
written, so after its timestamp up to clock skew. When the first decision read is already of
a purchase at >= C (clocks further apart than the lookback) the read steps further back.

Not covered: a worker that lost the partition but still runs may finish a batch and send its
decisions after the new owner read the tail (``agents`` drops records of a revoked generation
before deciding them; a batch already being flushed cannot be recalled).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition

from infra import topics
from infra.settings import Settings
from streams import metrics

log = logging.getLogger(__name__)

SOURCE_OFFSET = "sentinel-purchase-offset"  # header of a decision: its purchase's offset
CAP = 200_000  # decisions kept per partition (the commit interval's worth is a few thousand)
STEP_BACK = 1_000  # records the read steps back first when it started too late (doubling)

Wanted = dict[int, tuple[int, int]]  # partition -> (first offset of the batch, its time ms)
Found = dict[int, dict[str, int]]  # partition -> {purchase id: purchase offset}


def source_header(offset: int) -> list[tuple[str, bytes]]:
    return [(SOURCE_OFFSET, str(offset).encode())]


def source_offset(headers: list | None) -> int | None:
    for name, value in headers or ():
        if name == SOURCE_OFFSET and value:
            return int(value)
    return None


class Redeliveries:
    """Per purchases partition, the purchases whose decision is on the topic and whose offset
    the group had not committed when this worker was assigned the partition."""

    def __init__(self, read: Callable[[Wanted], Found]):
        self.read = read
        self.generation: int | None = None
        self.loaded: set[int] = set()
        self.found: Found = {}
        self.highest: dict[int, int] = {}

    def wanted(self, events: Iterable, generation: int) -> Wanted:
        """The batch's partitions not read back yet in this generation, with the batch's
        first offset of each and its record time."""
        if generation != self.generation:
            self.generation = generation
            self.loaded.clear()
            self.found.clear()
            self.highest.clear()
        first: Wanted = {}
        for event in events:
            msg = event.message
            if msg.partition in self.loaded or getattr(msg, "generation_id", None) not in (
                    None, generation):  # fetched before the rebalance: not where it resumes
                continue
            if msg.partition not in first or msg.offset < first[msg.partition][0]:
                ts_ms = int(msg.timestamp * 1000) if msg.timestamp else int(time.time() * 1000)
                first[msg.partition] = (msg.offset, ts_ms)
        return first

    def keep(self, wanted: Wanted, found: Found) -> None:
        self.loaded.update(wanted)
        for partition, decided in found.items():
            if decided:
                self.found[partition] = decided
                self.highest[partition] = max(decided.values())

    async def load(self, events: Iterable, generation: int) -> None:
        """Read back the decisions of the batch's newly assigned partitions (in a thread)."""
        wanted = self.wanted(events, generation)
        if not wanted:
            return
        try:
            found = await asyncio.to_thread(self.read, wanted)
        except (KafkaException, TimeoutError) as exc:
            metrics.REDELIVERY_READ_FAILURES.inc()
            log.warning("decisions of partitions %s not read back (%s): their redelivered "
                        "purchases are decided again", sorted(wanted), exc)  # fmt: skip
            found = {}
        self.keep(wanted, found)
        counts = {p: len(d) for p, d in found.items() if d}
        if counts:
            log.info("redelivered purchases already decided, by partition: %s", counts)

    def decided(self, partition: int, purchase_id: str) -> bool:
        found = self.found.get(partition)
        return found is not None and purchase_id in found

    def passed(self, events: Iterable) -> None:
        """Forget a partition's decisions once its records have passed the highest of them."""
        if not self.highest:
            return
        for event in events:
            msg = event.message
            if msg.offset >= self.highest.get(msg.partition, msg.offset + 1):
                del self.highest[msg.partition]
                del self.found[msg.partition]


@dataclass
class Scan:
    first: int  # purchases at offsets >= first are the ones wanted
    low: int  # the decisions partition's first and end offsets
    end: int
    start: int
    fresh: bool = True  # nothing read since (re)starting at ``start``
    step: int = STEP_BACK


class TailReader:
    """Reads decisions partitions back (its own consumer, no group membership, no commit)."""

    def __init__(self, settings: Settings, decode_id: Callable[[bytes], str],
                 timeout_s: float = 60.0):
        self.topic = topics.full_name(topics.DECISIONS, settings.kafka.topic_prefix)
        self.lookback_ms = settings.stream.redelivery_lookback_ms
        self.decode_id, self.timeout_s = decode_id, timeout_s
        self.conf = settings.kafka.consumer_conf(f"replica-redelivery-{uuid.uuid4().hex[:12]}")
        self.consumer: Consumer | None = None

    def __call__(self, wanted: Wanted) -> Found:
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                return self._read(wanted, deadline)
            except KafkaException as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning("reading decisions back: %s; retrying", exc)
                time.sleep(1.0)

    def _scans(self, consumer: Consumer, wanted: Wanted) -> dict[int, Scan]:
        since = [TopicPartition(self.topic, p, max(0, ts - self.lookback_ms))
                 for p, (_, ts) in wanted.items()]  # fmt: skip
        starts = {tp.partition: tp.offset for tp in consumer.offsets_for_times(since, 10)}
        scans = {}
        for p, (first, _) in wanted.items():
            low, end = consumer.get_watermark_offsets(TopicPartition(self.topic, p), 10)
            start = starts[p] if 0 <= starts[p] < end else end
            # at least the last record is read: it says whether the start was too late
            scans[p] = Scan(first, low, end, max(low, min(start, end - 1)))
        return scans

    def _read(self, wanted: Wanted, deadline: float) -> Found:
        consumer = self.consumer = self.consumer or Consumer(self.conf)
        scans = self._scans(consumer, wanted)
        found: Found = {p: {} for p in wanted}
        pending = {p for p, s in scans.items() if s.start < s.end}
        consumer.assign([TopicPartition(self.topic, p, scans[p].start) for p in pending])
        try:
            while pending:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"decisions partitions {sorted(pending)} not read back")
                for msg in consumer.consume(1000, 0.5):
                    p, offset = msg.partition(), msg.offset()
                    if (msg.error() is None and offset is not None and p in pending
                            and offset >= scans[p].start):
                        stepped_back = self._take(consumer, scans[p], msg, found[p])
                        if not stepped_back and offset + 1 >= scans[p].end:
                            pending.discard(p)
        finally:
            consumer.unassign()
        return found

    def _take(self, consumer: Consumer, scan: Scan, msg, decided: dict[str, int]) -> bool:
        """Keep the decision if it is wanted; True when the read stepped back instead."""
        source = source_offset(msg.headers())
        wanted = source is not None and source >= scan.first
        if scan.fresh:
            scan.fresh = False
            if wanted and scan.start > scan.low:  # started too late: step back, read again
                scan.start, scan.step = max(scan.low, scan.start - scan.step), scan.step * 2
                scan.fresh = True
                consumer.seek(TopicPartition(self.topic, msg.partition(), scan.start))
                return True
        if source is not None and wanted and len(decided) < CAP:
            decided[self.decode_id(msg.value())] = source
        return False
