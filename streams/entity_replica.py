"""Each worker's own complete copy of the IP, device, card and show states.

Why: per-wallet state is co-partitioned with the purchases (one writer per wallet), but an
IP, a device, a card or a show is shared by wallets on every partition. A worker that owns
some partitions must still see the whole entity. So every worker reads EVERY partition of the
purchases topic itself (its own consumer, no consumer group, nothing committed) and applies
each purchase to a ``processors.entity_state.EntityStore``: a deterministic function of the
topic, complete with 1, 2, 3 or more workers, rebuilt by re-reading after a restart.

Cost: each worker decodes every purchase of the partitions it does not score once more (~25
µs each) and holds every entity state of the last 24 h (shows: 7 d). Each record is fetched
once a worker: the partitions the worker scores come from its reader (``feed``; this
consumer pauses them while the feed follows on from what it has, and fetches them again from
there when the reader drops, re-places or pauses one), the others from this consumer. In
exchange the scoring path reads entities in memory, with no repartition hop and no table. A
record the worker scores is decoded once: whichever copy comes first, the scorer's or the
replica's (fed or fetched), is applied and the other is skipped. The records of a batch
reach the replica from the scorer itself (``offer``, already decoded); records the replica
has already (fetched first in a backlog, where it reads ahead, or fed and taken before the
batch) are handed to the scorer decoded (``decoded``), whether still held or applied
already. Each record the worker scores is also read once: the replica keeps what it read of
a record of a partition the worker scores (its ``Order`` and its crowd read,
``read_purchase``), with the decoded purchase, until the scorer takes it (``take_read``),
whichever thread applied it; a record the replica did not apply (not decodable, refused, not
yet reached) is decoded and read by the scorer itself.

Consistency: the store answers queries as of a purchase's event time ``t`` (rows strictly
before ``t``), so it may run ahead, but not too far: the scorer announces each batch
(``announce``) and the replica applies records up to ``LEAD_MS`` past the batch's latest
one, holding the rest (partitions paused beyond ``HOLD``: memory stays bounded on a
backlog). ``wait_covers(t, offsets, fence)`` holds a batch until the replica has applied, on every
partition, a record at or after ``t`` or everything up to where the broker said the partition
ended when asked after the batch was announced (the fence: each announce asks the broker for
every partition's end, ``_ask_ends``), and the batch's own records: features then equal what
replay computes, up to records still in flight to the broker. Not this consumer's own view of
the ends: an end of partition it reported, or rounds of ``consume`` (which return what
librdkafka has queued, its fetch of the other partitions perhaps still to come), may predate
records written together with the batch's, which the scorer's consumer brought first.

The worker's own reader's view serves instead, for the partitions it reads, when one broker
leads every partition of the topic (``reader_ends``): each of its fetch responses says where
every partition it fetches ends, at one moment, and the reader reports those ends (``ended``)
after it fed the records fetched before. A report made after a batch's records were fed was
made from a fetch that went after they were written, as the announce's ask goes after: a
batch of purchases stamped when sent (a live shop's) finds its partitions covered by then,
where each waited for the ask's round trip and the replica thread's turn on the GIL (entity
wait 9-21 ms a batch at 500-1 000 /s in a slow hour on this host, against ~1 ms). With
partitions led by several brokers each is fetched in its own rounds, so its report may
predate the batch's records: the broker is asked as before. Which brokers lead is asked at
``open`` and every ``LEADERS_EVERY_S`` after (``_check_leaders``). Not covered: a record of
another partition in the fetch response that brought the batch's last record, still being
unpacked by librdkafka when the reader read the ends.

Pruning: the store drops rows no query will read, below its *floor*: the earliest event time
the scorer may still ask about. Each partition the worker scores and that has records not yet
scored holds the floor at the earliest event time of its last batch (one not scored yet: at
the beginning), so a partition that lags the others still finds its rows: Faust may deliver
one partition days of event time ahead of another in a backlog of sparse traffic, or seek one
back to its start while the others run on (``streams/faust_compat.py``, override 4). A
partition that has not moved for ``STALL_S`` of wall time (scored, or owned since) holds it
no further than ``MAX_LAG_MS`` (7 d, the longest window) behind the newest batch, so a stopped
partition cannot hold memory.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from infra import topics
from infra.settings import Settings
from processors.crowd import CrowdRead, crowd_store, read_purchase
from processors.entity_state import SHOW_RETENTION_MS, EntityStore, apply_stores, entity_store
from processors.records import Order
from processors.timeutil import MINUTE_MS, to_ms
from schemas.codec import AvroCodec, DecodeError

log = logging.getLogger(__name__)

CONSUME_BATCH = 1000
LEAD_MS = 30 * MINUTE_MS  # how far past the scorer's latest batch the replica may apply
# How far a pending partition may hold the floor behind the newest batch: the longest window
# a feature reads (a show's prices, 7 d). Faust consumes partitions at about the same offset,
# not the same event time, so on sparse traffic a backlog's partitions drift days apart; with
# a shorter bound (it was 24 h) the partition behind lost crowd rows. A stalled partition holds
# at most this much entity state.
MAX_LAG_MS = SHOW_RETENTION_MS
# How long a pending partition may hold the floor wherever it is without moving (no batch, in
# wall time) before ``MAX_LAG_MS`` bounds it. Measured: a partition sought back to its start
# at start-up lagged its peers by ~9.6 d of the bench's sparse event time for a few seconds;
# with the 7 d bound alone the crowd store dropped rows its first purchases then read
# (``--workers 3``, feature agreement 0.974-0.986 in 2 of 8 runs).
STALL_S = 60.0
# Records held per partition beyond the lead before the partition is paused: decoded
# purchases, ~2.8 KB each (measured), so 2000 per partition hold ~35 MB on a backlog. It was
# 500 (for memory) until Faust's delivery got cheaper (faust_compat override 12): the scorer
# then outran the replica, and a backlog's batch waited 53-59 ms for it (``entity_wait``,
# partitions paused and fetched again) against 9 ms with 2000 (sentinel bench pipeline).
HOLD = 2000
PREFETCH_KIB = 8 * 1024  # librdkafka's queue of fetched records (its default: 64 MiB)
# Reads kept per partition the worker scores for the scorer to take (``take_read``), each with
# its decoded purchase (``decoded``): ~1.1 KB a read (tracemalloc, simulated purchases) and the
# purchase ~2.8 KB, which the held record had already, so at most ~4 MB a partition. The
# replica applies about a batch ahead of the scorer live, up to its lead in a backlog; what is
# not kept there is decoded and read again by the scorer.
READS_KEPT = 1000
# How long this consumer waits for a record while the feed may bring some (``step``): a
# record fed meanwhile waits at most this for this thread. 20 ms otherwise.
FED_POLL_S = 0.005
LEADERS_EVERY_S = 30.0  # how often the replica's thread asks which brokers lead the partitions
IDLE_WAIT_S = 0.05  # nothing to fetch: the longest wait for the feed, a batch or a stop
ENDS_TIMEOUT_S = 5.0  # for the broker's answer to where the partitions end (``_ask_ends``)
ENDS_WARN_EVERY_S = 30.0  # failing asks are logged at most this often

Read = tuple[Order, CrowdRead]  # a purchase read: its order and what the crowds read of it


class EntityReplica:
    def __init__(self, settings: Settings, codec: AvroCodec, store: EntityStore | None = None):
        self.store = store if store is not None else entity_store()
        self.crowds = crowd_store()  # aggregates across wallets (processors.crowd), same rules
        self.lock = threading.Lock()  # held while applying and while features are read
        self.topic = topics.full_name(topics.PURCHASES, settings.kafka.topic_prefix)
        self.codec = codec
        conf = settings.kafka.consumer_conf(f"replica-{uuid.uuid4().hex[:12]}", **{
            "enable.partition.eof": True, "queued.max.messages.kbytes": PREFETCH_KIB})
        self.consumer = Consumer(conf)
        # The ends are asked on a client of their own: the broker answers a connection's
        # requests one at a time, in order, so on the consumer's connection the ask waited
        # behind a fetch the broker held for new records (up to ``fetch.wait.max.ms``, 100 ms:
        # measured, a batch's entity wait of ~100 ms once or twice a run at 1 000 /s).
        self.ends_reader = Consumer(
            settings.kafka.consumer_conf(f"replica-ends-{uuid.uuid4().hex[:12]}"))
        self.latest_ms: dict[int, int] = {}  # partition -> largest event time applied
        self.caught_up: dict[int, bool] = {}  # partition -> fetched up to the known end
        self.next_offset: dict[int, int] = {}  # partition -> offset after the last applied
        self.held: dict[int, deque] = {}  # partition -> (offset, ts, purchase) not yet applied
        self.paused: set[int] = set()
        self.horizon_ms = -1  # records with event time up to this may be applied
        self.scored: dict[int, int] = {}  # partition -> latest offset a batch has announced
        self.scored_ms: dict[int, int] = {}  # partition -> earliest event time of its last batch
        self.moved_at: dict[int, float] = {}  # owned partition -> when last scored or first owned
        # partition the worker scores -> (offset, read, purchase) of records applied, not yet
        # scored
        self.reads: dict[int, deque[tuple[int, Read, dict]]] = {}
        self.applied = 0
        # the fence: each batch announced asks the broker where every partition ends; ``ends``
        # answers the asks up to ``ends_for``, asked after them (``covers``)
        self.asked = 0
        self.ends_for = 0
        self.ends: dict[int, int] = {}  # partition -> its end offset, as last asked
        self.eof_at: dict[int, int] = {}  # partition -> where this consumer last reached its end
        self._ends_warned = -ENDS_WARN_EVERY_S
        self.rejected = 0  # records the store refused (the scorer dead-letters them)
        # The feed (``streams/rd_fetch.py``, ``Feed``): the worker's own reader hands over
        # the records it fetched of the partitions the worker scores (``feed``), so this
        # consumer need not fetch them a second time. ``intake``: fed records and, as sets,
        # partitions whose feed may stop or jump (``unfeed``), in order; ``fed``: partitions
        # the feed carries (this consumer has them paused); ``reseek``: partitions fed until
        # lately, read on from where the feed left them.
        self._intake: deque = deque()
        self._intake_cv = threading.Condition()
        # The reader's ends (``ended``): (where the feed was per partition, the offset after
        # the last record fed, when they were reported; the ends), and whether one broker
        # leads every partition (``open``, ``_check_leaders``), without which they are not used.
        self.reader_ends: tuple[dict[int, int], dict[int, int]] | None = None
        self.one_leader = False
        self._leaders_at = 0.0  # when last asked (``_check_leaders``)
        self._fed_to: dict[int, int] = {}
        self._announced: dict[int, int] = {}  # the last batch's offsets (``announce``)
        self._waiting = 0  # batches in ``wait_covers``: the feed wakes this thread for them
        self.fed: set[int] = set()
        self._reseek: set[int] = set()
        self._own_paused: set[int] = set()  # what this consumer has paused (held full | fed)
        self._ends_failed = False  # the last ask for the ends got no answer
        self._progress = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="entity-replica", daemon=True)

    def start(self, timeout: float = 30.0) -> EntityReplica:
        self.open(timeout)
        self._thread.start()
        return self

    def open(self, timeout: float = 30.0) -> EntityReplica:
        """Assign every partition of the topic from its beginning (``start`` then reads them
        in its thread, one ``step`` after another)."""
        meta = self.consumer.list_topics(self.topic, timeout=timeout).topics[self.topic]
        if meta.error is not None:
            raise KafkaException(meta.error)
        partitions = sorted(meta.partitions)
        self.one_leader = one_leader(meta)
        self._leaders_at = time.monotonic()
        self.latest_ms = {p: -1 for p in partitions}
        self.caught_up = {p: False for p in partitions}
        self.next_offset = {p: 0 for p in partitions}
        self.eof_at = {p: 0 for p in partitions}
        self.held = {p: deque() for p in partitions}
        self.consumer.incremental_assign(
            [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._intake_cv:
            self._intake_cv.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.consumer.close()
        self.ends_reader.close()

    def announce(self, offsets: dict[int, int], earliest: dict[int, int], latest_ms: int,
                 owned: dict[int, int | None] | None = None) -> int:
        """A batch is about to be decided: per partition, its last offset (``offsets``) and
        earliest event time (``earliest``); ``latest_ms`` its latest event time. Apply up to
        those offsets and ``LEAD_MS`` past ``latest_ms``, and raise the floor (module doc).
        ``owned``: the partitions this worker scores, with the group's committed offset
        (None: unknown); default: every partition announced so far. Returns the batch's
        fence for ``covers``: the ask for every partition's end made for it (``step`` asks the
        broker after this announce)."""
        with self._progress:
            self.asked += 1
            fence = self.asked
            self.horizon_ms = max(self.horizon_ms, latest_ms + LEAD_MS)
            before = {p: self.scored.get(p, -1) for p in offsets}
            now = time.monotonic()
            for p, offset in offsets.items():
                self.scored[p] = max(self.scored.get(p, -1), offset)
                self.scored_ms[p] = earliest[p]
                self.moved_at[p] = now
            owned = owned if owned is not None else dict.fromkeys(self.scored)
            floor = self._floor(min(earliest.values()), owned)
            self._announced = dict(offsets)
            self._progress.notify_all()
        with self._intake_cv:  # a replica whose partitions are all fed waits there
            self._intake_cv.notify()
        with self.lock:
            self.store.advance_floor(floor)
            self.crowds.advance_floor(floor)
            self._keep_reads(owned, before)
        return fence

    def _keep_reads(self, owned: dict[int, int | None], scored: dict[int, int]) -> None:
        """Reads are kept for the partitions the worker scores (``owned``) only, and not for
        records at or before those already scored (``scored``: per partition, the last offset
        announced before this batch)."""
        reads = self.reads
        for p in [p for p in reads if p not in owned]:
            del reads[p]
        for p in owned:
            if p in self.held and p not in reads:
                reads[p] = deque()
        for p, offset in scored.items():
            kept = reads.get(p)
            while kept and kept[0][0] <= offset:
                kept.popleft()

    def take_read(self, partition: int, offset: int, purchase_id: str) -> Read | None:
        """The read of the record at (``partition``, ``offset``), kept since this replica
        applied it, else None (the caller reads it: not applied, not kept, or taken already).
        Taken once: it and the reads of the partition's earlier records, which the scorer
        has passed, are dropped. Called with ``lock`` held (as the scorer reads features)."""
        kept = self.reads.get(partition)
        if not kept:
            return None
        while kept and kept[0][0] < offset:
            kept.popleft()
        if not kept or kept[0][0] != offset:
            return None
        read = kept.popleft()[1]
        return read if read[0].purchase_id == purchase_id else None

    def _floor(self, batch_ms: int, owned: dict[int, int | None],
               now: float | None = None) -> int:
        """The earliest event time a query may still come for: this batch's, or that of the
        last batch of an owned partition with records not yet scored (one never scored:
        unknown, -1); for a partition that has not moved for ``STALL_S``, no more than
        ``MAX_LAG_MS`` before the newest batch. ``now``: ``time.monotonic()``."""
        now = time.monotonic() if now is None else now
        for p in [p for p in self.moved_at if p not in owned]:
            del self.moved_at[p]  # owned again later: it starts its wait afresh
        moving: list[int] = [batch_ms]  # this batch and the pending partitions that move
        stalled: list[int] = []
        for p, committed in owned.items():
            if p in self.held and self._pending(p, committed):
                since = self.moved_at.setdefault(p, now)
                (moving if now - since < STALL_S else stalled).append(self.scored_ms.get(p, -1))
        if not stalled:
            return min(moving)
        newest_ms = self.horizon_ms - LEAD_MS  # the latest event time announced
        return min(*moving, max(min(stalled), newest_ms - MAX_LAG_MS))

    def _pending(self, partition: int, committed: int | None) -> bool:
        """The partition may have records the scorer has not taken yet: fetched (held or
        applied) past what it scored and what its group committed, or not fetched to the end."""
        done = max(self.scored.get(partition, -1), (committed or 0) - 1)
        return not self.caught_up[partition] or self._expected(partition) - 1 > done

    def offer(self, records: list[tuple[int, int, int, dict]]) -> int:
        """The scorer's own decoded records, (partition, offset, event time in ms, purchase)
        in offset order per partition: each one its partition expects next is held as if
        this replica had fetched it (its fetched copy is then skipped, not decoded again), and
        what is held up to the announced batch is applied now, on the caller's thread: a batch
        need not wait for this replica's own fetch of its records, nor for its thread. A
        record after a gap is left for the replica's consumer, which reads every partition in
        order (at start-up, the history before the scorer's first batch); one already held or
        applied is ignored. Returns how many were taken."""
        taken = 0
        with self._progress:
            for partition, offset, ts, purchase in records:
                if partition in self.held and offset == self._expected(partition):
                    self.held[partition].append((offset, ts, purchase))
                    taken += 1
            # what the batch announced is applied here, whether offered now or fetched first
            # by the replica (a backlog): the batch does not wait for the replica's thread to
            # wake, take the GIL and apply it (20-50 ms a batch, measured; the work is the same)
            self._apply_held()
            self._progress.notify_all()
        return taken

    def feed(self, messages: list) -> None:
        """Records of this topic the worker's reader fetched (``streams/rd_fetch.Feed``, on
        the reader's thread). A partition whose fed records follow on from what this replica
        has is paused on its own consumer: each record is fetched once a worker (until the
        twentieth session the reader and this consumer each fetched every record of the
        worker's partitions). Queued: this replica's thread takes them at its next step,
        woken by the next batch's ``announce`` (or within 50 ms), not by each fetch: woken
        that way it took the GIL from the batch in progress (pipeline bench at 1 000 /s,
        this host: p99 25.3-50.4 ms against 42.0-128.9 woken, 38.5-90.4 unfed). Woken by
        the fetch only while a batch waits (``wait_covers``), which may be waiting for these
        very records: purchases stamped when sent, as a live shop's, leave a partition
        covered only by its next record or its end, and a batch could wait out the 50 ms
        (the first runs: entity wait 11-14 ms a batch at 500-1 000 /s against 4-6 woken;
        later alternated runs did not separate it from the host's noise). The batch's own
        records are decoded by the scorer then (``scoring.decode``)."""
        if self._stop.is_set():  # stopped (a test's replica): nothing would take them
            return
        fed_to = self._fed_to
        for m in messages:
            fed_to[m.partition()] = m.offset() + 1
        with self._intake_cv:
            self._intake.extend(messages)
            if self._waiting:
                self._intake_cv.notify()

    def ended(self, ends: dict[int, int]) -> None:
        """Where the reader's last fetches said the partitions it reads end (``Feed.ended``,
        on its thread, after it fed what it fetched before): kept with where the feed is."""
        self.reader_ends = (dict(self._fed_to), ends)  # one reference: read whole or not
        if self._waiting:  # a batch waits: perhaps for these
            with self._progress:
                self._progress.notify_all()

    def unfeed(self, partitions: set[int]) -> None:
        """The reader's records of ``partitions`` may stop or jump (dropped, placed anew,
        paused): this replica fetches them itself again, from where it is."""
        with self._intake_cv:
            self._intake.append(frozenset(partitions))
            self._intake_cv.notify()

    def decoded(self, positions: list[tuple[int, int]]) -> list[dict | None]:
        """For each (partition, offset), the purchase this replica fetched and decoded: held,
        not yet applied, or applied with its read kept for the scorer (None: neither, or not
        decodable). The scorer reads them instead of decoding its own copies: the same bytes
        of the same topic. Nothing here changes a purchase once decoded, so the scorer and
        the replica share it. Called on the scorer's thread, the only one that drops reads
        (``announce``, ``take_read``); the replica's thread appends to them under
        ``_progress``, held here."""
        out: list[dict | None] = []
        with self._progress:
            for partition, offset in positions:
                hit = _at(self.held.get(partition), offset)
                if hit is None:
                    hit = _at(self.reads.get(partition), offset)
                out.append(None if hit is None else hit[-1])
        return out

    def _expected(self, partition: int) -> int:
        """The offset a partition takes next: after its last held record, else after its last
        applied one."""
        held = self.held[partition]
        return held[-1][0] + 1 if held else self.next_offset[partition]

    def covers(self, ts_ms: int, offsets: dict[int, int] | None = None,
               fence: int | None = None) -> bool:
        """Every partition has nothing left before ``ts_ms``, and each partition in
        ``offsets`` has applied its record at that offset. A partition with no record at or
        after ``ts_ms`` applied or held has nothing left once it has applied everything up
        to its end: with ``fence`` (``announce``'s), the end the broker gave when asked after
        the batch was announced; without, the end this consumer last reached (tests).
        Not this consumer's end with a batch: it was seen when last fetched, perhaps before
        records written together with the batch's own, and rounds of ``consume`` go by
        before librdkafka's next fetch brings them (a burst written at once, mid-stream: the
        scorer's consumer brought one partition's share, the replica's still reported the
        others' ends from before the burst two rounds later, and the purchases decided then
        read counts without them; ``test_scale_out``)."""
        if offsets and any(self.next_offset.get(p, 0) <= o for p, o in offsets.items()):
            return False
        asked = fence is not None and self.ends_for >= fence  # the ends, asked after the batch
        reported = self._reported(offsets) if fence is not None and not asked else {}
        for p, latest in self.latest_ms.items():
            held = self.held[p]
            if latest >= ts_ms or (held and held[0][1] >= ts_ms):
                continue
            if held:
                return False
            if fence is None:
                if not self.caught_up[p]:
                    return False
            elif p in reported:
                if self._reached(p) < reported[p]:
                    return False
            elif not asked or p not in self.ends or self._reached(p) < self.ends[p]:
                return False
        return True

    def _reported(self, offsets: dict[int, int] | None) -> dict[int, int]:
        """The reader's ends, when reported after the records at ``offsets`` were fed and one
        broker leads every partition (module doc); else none."""
        report = self.reader_ends
        if not self.one_leader or report is None or not offsets:
            return {}
        positions, ends = report
        if all(positions.get(p, 0) > o for p, o in offsets.items()):
            return ends
        return {}

    def _ends_due(self, asked: int) -> bool:
        """The broker is to be asked where the partitions end for batch ``asked``: not asked
        since it was announced, and the reader's report does not say for every partition."""
        if asked <= self.ends_for:
            return False
        with self._progress:
            reported = self._reported(self._announced) if asked == self.asked else {}
        return not all(p in reported for p in self.held)

    def _reached(self, partition: int) -> int:
        """The offset up to which a partition with nothing held has applied every record:
        after its last applied one, or where this consumer last reached its end (records
        before it were delivered first, held, and so applied)."""
        return max(self.next_offset[partition], self.eof_at[partition])

    def wait_covers(self, ts_ms: int, offsets: dict[int, int] | None = None,
                    timeout: float = 5.0, fence: int | None = None) -> bool:
        """Block until ``covers(ts_ms, offsets, fence)`` (True) or the timeout (False)."""
        deadline = time.monotonic() + timeout
        with self._progress:
            self._waiting += 1
            try:
                while not self.covers(ts_ms, offsets, fence):
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._thread.is_alive():
                        return False
                    self._progress.wait(min(left, 0.05))
            finally:
                self._waiting -= 1
        return True

    def _check_leaders(self) -> None:
        """``one_leader`` again, every ``LEADERS_EVERY_S``: a partition's leadership may move
        to another broker (not on one broker, the only one); unknown counts as not one."""
        now = time.monotonic()
        if now - self._leaders_at < LEADERS_EVERY_S:
            return
        self._leaders_at = now
        try:
            meta = self.consumer.list_topics(self.topic, timeout=ENDS_TIMEOUT_S).topics[self.topic]
            self.one_leader = meta.error is None and one_leader(meta)
        except KafkaException:
            self.one_leader = False

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._check_leaders()
                if not self.step() and len(self._own_paused) == len(self.held):
                    asked = not self._ends_due(self.asked)
                    with self._intake_cv:  # nothing to fetch: wait for the feed or a batch
                        if not self._intake and (asked or self._ends_failed):
                            self._intake_cv.wait(IDLE_WAIT_S)
        except Exception:  # the worker notices: wait_covers returns False from then on
            log.exception("entity replica stopped")

    def step(self) -> int:
        """Ask where the partitions end if a batch was announced since last asked, fetch, hold
        and apply once; the number of messages fetched."""
        asked = self.asked
        due = self._ends_due(asked)
        ends = self._ask_ends() if due else None
        self._ends_failed = due and ends is None  # asked again, not at once
        # what the client has fetched already, else the next record as soon as it comes (a
        # batch consume would wait out its whole timeout for a full batch); not long while
        # the feed may bring records meanwhile
        messages = self.consumer.consume(CONSUME_BATCH, timeout=0)
        if not messages and not self._intake and len(self._own_paused) < len(self.held):
            messages = self.consumer.consume(1, timeout=FED_POLL_S if self.fed else 0.02)
        with self._intake_cv:  # after this consumer's: a record both brought is taken fed
            intake, self._intake = self._intake, deque()
        with self._progress:
            if ends is not None and asked > self.ends_for:
                self.ends, self.ends_for = ends, asked
            self._hold_fed(intake)  # first: a partition fed is paused the sooner
            self._hold(messages)
            self._apply_held()
            self._pace()
            self._progress.notify_all()
        return len(messages) + len(intake)

    def _ask_ends(self) -> dict[int, int] | None:
        """Every partition's end offset, asked of the broker now (one ListOffsets request:
        ``offsets_for_times`` with ``OFFSET_END``, -1, Kafka's "latest"); None when it did not
        answer for each of them (asked again at the next step)."""
        try:
            answer = self.ends_reader.offsets_for_times(
                [TopicPartition(self.topic, p, OFFSET_END) for p in self.held],
                timeout=ENDS_TIMEOUT_S)
            if not any(tp.error is not None or tp.offset < 0 for tp in answer):
                return {tp.partition: tp.offset for tp in answer}
            failed: object = [(tp.partition, tp.error) for tp in answer
                              if tp.error is not None or tp.offset < 0]
        except KafkaException as exc:
            failed = exc
        now = time.monotonic()
        if now - self._ends_warned >= ENDS_WARN_EVERY_S:
            self._ends_warned = now
            log.warning("entity replica: the broker did not say where %s ends: %s (asked "
                        "again; batches wait)", self.topic, failed)
        return None

    def _hold(self, messages) -> None:
        for msg in messages:  # in order: an end-of-partition event, then perhaps new records
            partition, err = msg.partition(), msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    self.caught_up[partition] = True
                    self.eof_at[partition] = max(self.eof_at[partition], msg.offset())
                continue
            self.caught_up[partition] = False
            offset = msg.offset()
            if offset is None or offset < self._expected(partition):
                continue  # offered by the scorer already (``offer``)
            try:
                purchase = self.codec.decode(msg.value())
            except DecodeError:  # the scorer dead-letters it; the offset still counts
                purchase = None
            ts = to_ms(purchase["occurred_at"]) if purchase else -1
            self.held[partition].append((offset, ts or -1, purchase))

    def _hold_fed(self, intake) -> None:
        """Hold the fed records that follow on from what each partition has (a record this
        replica has already is skipped, one after a gap is left to its own consumer, which
        then fetches the partition again); a partition fed that way is ``fed``."""
        for item in intake:
            if isinstance(item, frozenset):  # the feed of these may stop or jump
                self._unfed(item & self.fed)
                continue
            partition = item.partition()
            if item.error() is not None or partition not in self.held:
                continue
            expected = self._expected(partition)
            if item.offset() != expected:
                if item.offset() > expected:
                    self._unfed({partition} & self.fed)
                continue
            self._hold([item])
            if partition not in self.fed:
                self.fed.add(partition)
                self._reseek.discard(partition)

    def _unfed(self, partitions: set[int] | frozenset[int]) -> None:
        self.fed -= partitions
        self._reseek |= partitions

    def _apply_held(self) -> None:
        horizon = self.horizon_ms
        apply_one = self._apply_one
        with self.lock:
            for partition, held in self.held.items():
                if not held:
                    continue
                scored = self.scored.get(partition, -1)
                reads = self.reads.get(partition)  # None: a partition the worker does not score
                latest, offset = self.latest_ms[partition], -1
                while held and (held[0][1] <= horizon or held[0][0] <= scored):
                    offset, ts, purchase = held.popleft()
                    if purchase is not None:
                        read = apply_one(purchase, ts)
                        if read is not None and reads is not None and len(reads) < READS_KEPT:
                            reads.append((offset, read, purchase))
                    if ts > latest:
                        latest = ts
                if offset >= 0:  # something applied: the partition's progress, once
                    self.latest_ms[partition] = latest
                    self.next_offset[partition] = offset + 1

    def _apply_one(self, purchase: dict, ts: int = -1) -> Read | None:
        """Apply ``purchase`` to both stores; what was read of it (None: refused). ``ts``: the
        event time it was held with: ``to_ms`` of its ``occurred_at`` when positive (the
        scorer holds ``to_ms(...) or 0``, the replica's fetch ``or -1``), else converted
        again by ``read_purchase`` (which then raises what the conversion raises)."""
        try:
            # read once for both stores and applied to both in one call, as FeatureEngine does
            read = read_purchase(purchase, ts if ts > 0 else None)
            apply_stores(self.store, self.crowds, *read)
        except Exception as exc:  # the scorer dead-letters this record with the reason
            self.rejected += 1
            log.debug("replica skipped %s: %s", purchase.get("purchase_id"), exc)
            return None
        self.applied += 1
        return read

    def _pace(self) -> None:
        """Pause partitions holding too much or fed, resume those that have room again and
        are not fed; one fed until lately is read on from where the feed left it."""
        full = {p for p, held in self.held.items() if len(held) >= HOLD}
        room = {p for p in self.paused if len(self.held[p]) < HOLD // 2}
        self.paused = (self.paused | full) - room
        want = self.paused | self.fed
        if want - self._own_paused:
            self.consumer.pause([TopicPartition(self.topic, p) for p in want - self._own_paused])
        resume = self._own_paused - want
        if resume:
            self.consumer.resume([TopicPartition(self.topic, p) for p in resume])
            for p in resume & self._reseek:
                self._seek(p, self._expected(p))
        self._reseek -= resume
        self._own_paused = want

    def _seek(self, partition: int, offset: int) -> None:
        """Read ``partition`` from ``offset`` on (correct without: what it fetches before
        ``offset`` is skipped, but a partition fed for long would be fetched again)."""
        tp = TopicPartition(self.topic, partition, offset)
        try:
            self.consumer.seek(tp)
        except KafkaException:  # not fetching yet: assigned again from there
            self.consumer.incremental_unassign([TopicPartition(self.topic, partition)])
            self.consumer.incremental_assign([tp])


def one_leader(meta) -> bool:
    """One broker leads every partition of a topic's metadata (-1: a partition without one)."""
    leaders = {getattr(p, "leader", None) for p in meta.partitions.values()}
    return len(leaders) == 1 and None not in leaders and -1 not in leaders


def _at(entries: deque | None, offset: int) -> tuple | None:
    """The entry of ``offset`` in ``entries`` (held records or kept reads of one partition:
    tuples that start with their offset, in offset order, consecutive unless a record was
    skipped), found by its distance from the first; None when it is not there."""
    if not entries or not 0 <= (i := offset - entries[0][0]) < len(entries):
        return None
    entry = entries[i]
    return entry if entry[0] == offset else None
