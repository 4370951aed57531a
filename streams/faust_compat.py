"""Every override of Faust's internals, in one place, for the Faust version they were written for.

faust-streaming 0.15 and its client aiokafka 0.14 (checked at import: another version refuses
to start until these are re-read against its source):

1. **Fetch wait.** Worker consumers hard-code ``fetch_max_wait_ms=1500``; on a broker that
   holds fetches for the full wait that is ~half a second per hop (DESIGN.md "Known facts").
   Our transport sets it from ``KAFKA_FETCH_WAIT_MAX_MS`` (default 100 ms: Apache Kafka
   answers as soon as a record is there; on Tansu, 10: ``infra/settings.py``).
2. **Acks across a rebalance.** Faust stamps each fetched message with the consumer
   generation. After a rebalance it seeks every partition back to its committed offset, so a
   message fetched in an older generation will be delivered again — but Faust still *acks*
   the stale copy (``Stream._py_aiter`` acks the messages it skips for their generation, and
   ``take_events`` acks whatever its buffer held when the rebalance came), and an ack is what
   the next commit is made of. A stale ack can commit an offset no current-generation record
   was processed for: the record is then never decided (issue 8: "299 of 300 decisions").
   ``Consumer.ack`` below refuses acks of stale-generation messages and every ack while a
   rebalance is in progress; the records are redelivered and decided then.
3. **Batches across a rebalance.** ``take_events`` keeps its buffer across a rebalance, so a
   batch can hold the stale copy of a record *and* its redelivered copy: decided twice, the
   second time seeing the first as a previous purchase. ``current_events`` drops stale and
   repeated records from a batch (``to_process``: after the guard of item 4).

4. **Records skipped at start-up.** Measured here: when the worker's event loop is busy while
   Faust resumes its streams after the first assignment, Faust's fetcher can advance its read
   offset past records it never delivered (``Consumer._drain_messages`` moves on when the flow
   is suspended): a whole run of records per partition is never processed, and the commit
   stalls behind the hole. ``OffsetGuard`` knows the next offset it expects per partition;
   a batch that jumps ahead is not processed (its records are not acked) and the partition is
   sought back.

   Two ways a seek back went wrong (found by the chaos run: seven purchases never decided):
   Faust's cached committed offset can lag the group's (it is re-read at assignment, before
   the previous generation's last commit lands), so a "jump" to the group's committed offset
   is no jump: the broker's committed offset is asked before seeking. And records of the
   fetch in progress keep arriving after a seek and move Faust's read offset past the target,
   so the re-fetched records were dropped by Faust as already read: ``ReadOffsets`` holds the
   read offset of a partition being sought back until its target arrives. When the target
   does not come within the patience, on a gapless topic (purchases, auth events and transfers
   by sender, written by idempotent producers: no offset is a hole; ``streams/agents.py``)
   the guard seeks it again, for as long as it takes, unless retention deleted it; on a topic
   written in transactions (chain transfers) it resumes at the first record it held back
   (never past it): the hole is a transaction marker. There a jump is first checked with the
   broker (``Consumer.next_record``): when the first record after the expected offset is the
   one that came, the offsets between are markers and nothing is sought; and the offset just
   below the highwater is taken for the last transaction's marker, not a record waiting.

5. **Batches as they come** (``take_available``, below). A batch ends once the records
   fetched are in; under a backlog (a full batch already waiting in the stream, or a first
   record written more than ``BACKLOG_BEHIND_S`` ago) it fills for up to ``BACKLOG_FILL_S``
   instead of the linger, until the batch size, waiting for Faust to deliver more
   (``fill_time``, ``_fill``): a batch's fixed cost (rules, model, commit) is then spread over
   a full batch, and records that waited anyway wait a little more.

6. **No terminal spinner.** At a log level of WARN or above, Faust's ``Worker`` sets the root
   logger to DEBUG and adds a handler that turns its terminal spinner for every record. Every
   ``log.debug`` in aiokafka, Faust and mode then builds a ``LogRecord`` (aiokafka logs each
   response frame and fetch round), measured at ~0.1 ms of the consumer thread per purchase at
   1 000/s. ``Worker`` below leaves the root logger at the level asked for. Set as the app's
   ``Worker`` in ``streams/app.py``.

7. **Committed offsets read, never guessed.** aiokafka 0.14 reads an OffsetFetch answer only
   partition by partition (``GroupCoordinator._do_fetch_commit_offsets``), but a broker since
   KIP-88 answers a group-level error with that error at the top of the response and *no
   partitions*: a broker restarted a moment ago says ``COORDINATOR_LOAD_IN_PROGRESS`` (or
   ``NOT_COORDINATOR``) while it loads ``__consumer_offsets``. aiokafka took the empty answer
   for "no committed offset": its fetcher reset the partition to ``auto_offset_reset``
   (earliest, offset 0) and Faust's ``perform_seek`` kept no committed offset, which the guard
   of item 4 took for 0: it let the re-read through, or sought the partition back to 0 when
   records came from further on. A whole topic read again, auth events dead-lettered as late.
   ``GroupCoordinator`` below raises that group-level error as aiokafka raises the same code
   for one partition (retried after its back-off, the coordinator looked up again when it
   moved), with a warning every few seconds while it lasts; and ``Consumer.committed_offset``
   is None, not 0, for a partition whose committed offset was not read, so the guard waits for
   it instead of seeking to 0. A partition still unknown when it stalls (Faust's seek to the
   committed offsets failed or timed out after the restart) is placed by the group's committed
   offset, read through confluent-kafka (``OffsetGuard.stalled``).

8. **Every partition sought at assignment.** After each rebalance Faust seeks its partitions
   to their committed offsets (``perform_seek``), but aiokafka's ``seek_to_committed`` seeks
   only a partition whose committed offset is above 0: one with nothing committed (a new
   group, or a first generation that ended before its first commit) stays wherever the
   fetcher got to. Measured with three workers starting together on a pre-loaded topic: a
   worker that had fetched a partition's records in the generation before (one fetch
   response can hold a whole partition) and lost them to the rebalance got the partition
   back at its end: nothing was delivered until ``unstick_partitions`` noticed, 5-10 s later,
   twice in four runs. ``ConsumerThread`` below seeks those partitions too: to 0, or as
   ``auto_offset_reset`` says when nothing is committed.

9. **No gaps on gapless topics.** ``Consumer._drain_messages`` records the offsets between a
   record and the previous one read as a gap, and ``_new_offset`` commits through gaps as if
   acked. On a gapless topic a gap is records the fetcher skipped (after a seek,
   records of the fetch in progress still arrive): found by the chaos run (seed 11), Faust
   committed purchases partition 5 from 19 to 39 with only 38 processed, 35-37 never decided.
   ``Consumer._add_gap`` records none there. And the guard (item 4) takes the group's
   committed offset as the baseline of a partition whose committed offset is not known yet,
   instead of the first record that comes (``OffsetGuard._baseline``).

10. **No commit past a record not processed.** Faust commits the first run of consecutive
    acked offsets (``Consumer._new_offset``) wherever it starts: its check that the run starts
    at the committed offset is off by one and is skipped while the committed offset is unknown
    (from a revocation until Faust's seek returns) or 0. Found by CI: purchases partition 2
    committed at 210, 214 onwards acked, 210-213 never decided. On a gapless topic
    ``Consumer._new_offset`` commits only the run that starts at the committed offset
    (``commit_end``), nothing while that offset is unknown; and a partition whose commit is
    held by a record never acked while later ones were is sought back to its committed
    offset (``OffsetGuard.held_at``, by the timer that looks for stalls): the records after
    it are redelivered and skipped as decided.

11. **Records fetched at an assignment kept.** ``FlowControlEvent.resume`` (mode) clears every
    stream queue. Faust resumes the flow for recovery, then resumes the stream partitions, seeks
    them to their committed offsets and resumes the flow again (``Recovery.on_recovery_completed``):
    the records fetched and queued while that seek was awaited, the first ones after the
    committed offsets, were dropped with Faust's read offset already past them. Measured on
    second runs: one to all partitions lost their first records, seen by the guard as a jump
    (sought back at once) or, when the fetch had brought every record, as a stall (sought back
    10 s later). ``FlowControl.resume`` below does not clear: the queues are cleared when the
    flow is suspended at a revocation (``App.on_partitions_revoked``), and a record queued
    from an older generation is not processed (items 2-3). ``App`` uses it.

12. **A record delivered without four tasks.** ``Consumer._drain_messages`` hands each fetched
    record to the streams by ``wait_first(callback(message), suspend_flow.wait())``: mode's
    ``wait_first`` makes a task of each (and of the service's stopped and crashed events),
    waits for the first done and cancels the rest: four tasks and three cancellations a
    record, ~8 % of the worker's main thread at 1 000 purchases/s (py-spy). The callback nearly
    always completes at its first step (the queue has room). ``Consumer.wait_first`` below
    runs that first step at once, as the callback's task would have (it is scheduled first,
    so it always got its first step before anything else ran); when it completes, the
    result is what mode's gives, but for the winners, which the drain does not read; when it
    awaits something, the rest of it (``Resumed``) goes to mode's ``wait_first`` with the
    others, which cancels it as before when the flow is suspended first.

13. **The consumer thread named.** mode's ``ServiceThread`` runs aiokafka (fetch rounds,
    heartbeats, commits) in a thread named ``Thread-N``; ``ConsumerThread`` names it
    ``faust-consumer`` once started (in Python and in the kernel), so its CPU is told apart
    by name (``sentinel_thread_cpu_seconds_total``, ``streams/metrics.ThreadCpu``; the
    bench's floor agent, read from outside).

14. **Records fetched by librdkafka** (``SENTINEL_FETCHER``, by default ``librdkafka``;
    ``aiokafka`` leaves Faust's fetching as it is; ``streams/rd_fetch.py``).
    aiokafka fetches in Python, on a thread that shares the interpreter lock with the agents
    (measured: as much of that lock's time a record as a bare agent's own loop). With the
    setting, ``Fetcher`` sends no fetch request and tells a ``PartitionReader`` (a librdkafka
    consumer without a group) every position aiokafka is given: every seek, every reset
    (dropped until aiokafka has the new position), every assignment (``ConsumerThread``
    syncs the reader before each ``getmany``). ``ConsumerThread.getmany`` takes the records
    from the reader on the event loop, without a hop to the consumer thread; aiokafka's
    positions, highwaters and fetch times are kept as its own fetcher keeps them, so Faust's
    recovery, lag and livelock checks read them as before. Group membership, offsets read and
    committed, and every guard above stay as they are: only where the records come from moves.
    The reader reads only the partitions Faust takes records of: its active partitions, and
    those held back while their stream's buffer is full (``Consumer.getmany`` yields no
    other's). Another is dropped, and placed again at aiokafka's position once Faust takes it
    again. After recovery Faust leaves a table's own changelog partitions out; read anyway,
    they brought back every state the worker wrote (its own echo, a record a purchase), filed
    on the reader's thread under the interpreter lock up to the buffer's cap per partition
    and never taken (measured in one worker: 10 578 such records filed beside 11 348
    purchases). A record taken just before aiokafka revokes its partition has no highwater
    (``ConsumerThread.highwater``: None, where aiokafka asserts).

Selected by the broker URL scheme ``sentinel://``; ``App`` is the app class (``streams/app.py``).
"""

from __future__ import annotations

import asyncio
import bisect
import importlib.metadata
import logging
import time
from collections.abc import Callable, Sequence, Set

import aiokafka
import faust
from aiokafka import errors as kafka_errors
from aiokafka.consumer import consumer as aiokafka_consumer
from aiokafka.consumer import fetcher as aiokafka_fetcher
from aiokafka.consumer import group_coordinator
from aiokafka.protocol.commit import OffsetFetchRequest
from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import ConsumerMessage
from mode.services import WaitResults
from mode.utils.futures import notify
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent

from infra.process import name_this_thread
from infra.settings import get_settings
from streams.rd_fetch import PartitionReader

log = logging.getLogger(__name__)

SCHEME = "sentinel"
WRITTEN_FOR = {"faust-streaming": ("0.15.", faust.__version__),
               "aiokafka": ("0.14.", aiokafka.__version__),
               "mode-streaming": ("0.7.", importlib.metadata.version("mode-streaming"))}

for _name, (_written_for, _installed) in WRITTEN_FOR.items():
    if not _installed.startswith(_written_for):
        raise ImportError(
            f"streams/faust_compat.py overrides {_name} {_written_for}x internals; "
            f"installed is {_installed}: re-check each override against its source"
        )


def is_stale(message, current_generation: int, revoked_generation: int) -> bool:
    """A message fetched in a generation that has since been revoked or replaced: its
    partition was (or will be) sought back to the committed offset, so it comes again."""
    generation = getattr(message, "generation_id", None)
    if generation is None:
        return False
    return generation != current_generation or generation <= revoked_generation


def current_events(events: Sequence, app) -> list:
    """The batch without stale-generation records and without repeated (tp, offset) pairs."""
    consumer = app.consumer
    seen: set[tuple[object, int]] = set()
    kept, dropped = [], []
    for event in events:
        message = event.message
        key = (message.tp, message.offset)
        if key in seen or consumer.is_stale(message):
            dropped.append((message.tp.partition, message.offset, message.generation_id))
            continue
        seen.add(key)
        kept.append(event)
    if dropped:
        log.info("dropped %d stale or repeated records from a batch (partition, offset, "
                 "generation; current %s): %s", len(dropped), app.consumer_generation_id,
                 dropped[:20])
    return kept


def to_process(events: Sequence, app, guard: OffsetGuard) -> tuple[list, dict[object, int]]:
    """(the records of a batch to process, partitions to seek back): stale-generation records
    dropped (override 2), those the guard holds back (override 4), then repeats (override 3).
    Repeats go last so that the copy kept is one the guard admitted (found by a test run:
    after a seek back the batch held the fetch in progress's copies of 193-200, then 109-200
    again; the first copies were kept and held back by the guard, the second dropped as
    repeats: 193-200 never decided). Every record not processed is marked acked, so that no
    ack of it counts toward a commit: only the copy processed is acked."""
    fresh = [event for event in events if not app.consumer.is_stale(event.message)]
    admitted, seek = guard.check(fresh)
    kept = current_events(admitted, app)
    processed = {id(event.message) for event in kept}
    for event in events:
        if id(event.message) not in processed:
            event.message.acked = True
    return kept, seek


BACKLOG_FILL_S = 0.25  # how long a backlog's batch may fill (up to ``max_``)
BACKLOG_BEHIND_S = 0.5  # a batch whose first record is older than this is a backlog's
PATIENT_POLL_S = 0.002  # how often a backlog's batch looks for more while the stream is empty
PATIENT_GAP_S = 0.02  # ... and how long without a new record before it is taken as it is


def take_available(stream, max_: int, linger_s: float):
    """Batches of up to ``max_`` events of ``stream``, each yielded once the records already
    fetched are in, and at most ``linger_s`` after its first, or ``BACKLOG_FILL_S`` on a
    backlog (override 5, ``fill_time``)."""
    agen = _take_available(stream, max_, linger_s)
    stream._active_agens.add(agen)  # closed when the stream stops, as Faust's own takes are
    return agen


async def _take_available(stream, max_: int, linger_s: float):
    events: list = []
    arrived, room = asyncio.Event(), asyncio.Event()
    busy: asyncio.Future | None = None  # set while the agent works on a batch

    async def add(value):
        nonlocal busy
        if busy is not None:
            try:
                await busy
            finally:
                busy = None
        if stream.current_event is None:
            raise RuntimeError("take_available found current_event is None")
        events.append(stream.current_event)
        arrived.set()
        if len(events) >= max_:
            room.clear()
            await stream.wait(room)
        return value

    loop, enable_acks = asyncio.get_running_loop(), stream.enable_acks
    stream.enable_acks = False  # acked here, once the agent is done with the batch
    stream.add_processor(add)
    stream._enable_passive(aiter(stream.channel))
    try:
        while not await stream.wait_for_stopped(arrived):
            queue = stream.channel.queue
            fill_s = fill_time(queue.qsize(), max_, linger_s, behind_s(events))
            await _fill(events, max_, loop.time() + fill_s, queue, patient=fill_s > linger_s)
            arrived.clear()
            if not events:
                continue
            busy = loop.create_future()
            try:
                yield list(events)
            finally:
                for event in events:
                    await stream.ack(event)
                events.clear()
                notify(busy)
                room.set()
    finally:
        stream.enable_acks = enable_acks
        stream._processors.remove(add)


def behind_s(events: list) -> float:
    """How long ago the batch's first record was written (its timestamp; 0 when unknown)."""
    stamp = events[0].message.timestamp if events else None
    return max(0.0, time.time() - stamp) if stamp else 0.0


def fill_time(waiting: int, max_: int, linger_s: float, behind: float = 0.0) -> float:
    """How long a batch may fill: ``linger_s`` while records come as they are produced, so a
    purchase is not held for others; ``BACKLOG_FILL_S`` on a backlog, when a full batch
    (``max_``) is already fetched and waiting in the stream or the batch's first record was
    written ``behind`` ≥ ``BACKLOG_BEHIND_S`` seconds ago: those records waited anyway, and a
    larger batch spreads a batch's fixed cost (rules, model, commit: ~5 ms) over more of them,
    so the backlog drains faster."""
    backlog = waiting >= max_ or behind >= BACKLOG_BEHIND_S
    return max(linger_s, BACKLOG_FILL_S) if backlog else linger_s


async def _fill(events: list, max_: int, deadline: float, queue, patient: bool = False,
                clock: Callable[[], float] | None = None) -> None:
    """Let the records already fetched into ``events``: Faust's stream takes one record
    from its channel per turn of the event loop (and yields in between), so the batch is
    done when the channel is empty and a few turns brought nothing, or at ``deadline``.
    ``patient`` (a backlog): done when full, at ``deadline``, or when no record came for
    ``PATIENT_GAP_S``, looking again every ``PATIENT_POLL_S`` while the channel is empty
    (Faust's fetcher fills it meanwhile; on a backlog its deliveries came at most 2-7 ms
    apart, measured). The gap ends the batch at a backlog's tail, and bounds what a
    producer's clock running late (records that look old) costs at a low rate. ``clock``:
    the event loop's by default (``deadline`` is on it)."""
    now = clock or asyncio.get_running_loop().time
    # turns that brought nothing, when a record last came, how many had come then
    quiet, last, seen = 0, now(), len(events)
    while len(events) < max_ and now() < deadline:
        if (now() - last >= PATIENT_GAP_S) if patient else quiet >= 3:
            break
        await asyncio.sleep(PATIENT_POLL_S if patient and queue.empty() else 0)
        came, seen = len(events) > seen, len(events)
        quiet = 0 if came or not queue.empty() else quiet + 1
        if came:
            last = now()


def commit_end(acked: list[int], committed: int | None) -> int | None:
    """The offset to commit on a gapless partition (override 10): one past the run of acked
    offsets that starts at ``committed``; None while ``committed`` is unknown or its record
    is not acked. The run, and offsets below ``committed`` (acked again after a redelivery),
    are removed from ``acked`` (left sorted, without repeats)."""
    if committed is None or not acked:
        return None
    acked[:] = sorted(set(acked))
    del acked[:bisect.bisect_left(acked, committed)]
    end = committed
    while end - committed < len(acked) and acked[end - committed] == end:
        end += 1
    del acked[:end - committed]
    return end if end > committed else None


class OffsetGuard:
    """Per source partition, the next offset a batch should bring (see the module doc).

    A jump ahead that the group's committed offset (``broker_committed``) does not explain:
    the partition is sought back to the expected offset, and its records are not processed
    (nor acked) until that offset arrives. If it does not arrive within ``patience_s``:

    - on a ``gapless`` topic (no producer writes it in transactions and it is not compacted:
      every offset from the log start up holds a record), it is sought again, for as long as
      it takes, unless retention deleted it (``log_start`` past it): then the partition
      resumes at the log start. A slow broker (restarting, or a loaded host) must not turn
      into records never decided;
    - on another topic the gap is taken as real (a transaction marker), and the partition
      resumes at the first record held back meanwhile."""

    ASK_AGAIN_S = 5.0  # after the broker did not answer an ask for a committed offset

    def __init__(self, patience_s: float = 10.0, clock=time.monotonic,
                 committed_of=lambda tp: None, broker_committed=lambda tp: None,
                 gapless=lambda topic: False, log_start=lambda tp: None,
                 next_record=lambda tp, offset: None) -> None:
        self.patience_s, self.clock, self.committed_of = patience_s, clock, committed_of
        self.broker_committed, self.gapless, self.log_start = broker_committed, gapless, log_start
        self.next_record = next_record
        self.expected: dict[object, int] = {}
        # tp -> (offset sought, give-up time, lowest offset held back meanwhile)
        self.seeking: dict[object, tuple[int, float, int]] = {}
        self.looked: dict[object, tuple[int, int]] = {}  # tp -> (expected, looks unchanged)
        self.asked: dict[object, int] = {}  # tp -> the group's committed offset, asked
        self.held: dict[object, tuple[int, int]] = {}  # tp -> (commit held at, looks)
        self.unanswered: dict[object, float] = {}  # tp -> when the broker last did not answer

    def reset(self) -> None:
        self.expected.clear()
        self.seeking.clear()
        self.looked.clear()
        self.asked.clear()
        self.held.clear()
        self.unanswered.clear()

    def next_offset(self, tp) -> int | None:
        """The offset the partition should deliver next: after the last record processed,
        else the committed offset (the first record after an assignment)."""
        expected = self.expected.get(tp)
        if expected is not None:
            return expected
        committed = self.committed_of(tp)
        return committed if committed is not None else self.asked.get(tp)

    def stalled(self, tp, highwater: int | None, looks: int = 2) -> int | None:
        """Called every few seconds: the offset to seek a partition back to when records are
        waiting (``highwater``) but it delivered none over ``looks`` consecutive looks. A
        partition whose committed offset Faust has not read since the assignment (its seek
        to the committed offsets failed or timed out: override 7) asks the group's instead:
        unknown must not mean stuck for good. On a topic written in transactions the offset
        before the highwater is the last transaction's marker, no record waiting."""
        expected = self.next_offset(tp)
        if expected is None and highwater and tp not in self.seeking:
            expected = self._ask_group(tp)
        marker = 0 if self.gapless(tp.topic) else 1
        if (expected is None or highwater is None or expected >= highwater - marker
                or tp in self.seeking):
            self.looked.pop(tp, None)
            return None
        if not self._steady(self.looked, tp, expected, looks):
            return None
        self.seeking[tp] = (expected, self.clock() + self.patience_s, highwater)
        return expected

    def held_at(self, tp, committed: int | None, first_acked: int | None,
                looks: int = 2) -> int | None:
        """Called every few seconds: the offset to seek a gapless partition back to when its
        commit is held at ``committed`` by records never acked while later ones were
        (``first_acked`` beyond it) over ``looks`` consecutive looks (override 10). When
        retention deleted the committed offset, the commit starts at the log start instead
        (``asked``, read by ``Consumer.commit_base``) and nothing is sought."""
        if (committed is None or first_acked is None or first_acked <= committed
                or tp in self.seeking):
            self.held.pop(tp, None)
            return None
        if not self._steady(self.held, tp, committed, looks):
            return None
        start = self.log_start(tp)
        if start is not None and start > committed:  # retention deleted it: commit from there
            log.warning("partition %s of %s: offsets %d-%d deleted by retention: committing "
                        "from %d", tp.partition, tp.topic, committed, start - 1, start)  # fmt: skip
            self.asked[tp] = start
            return None
        self.seeking[tp] = (committed, self.clock() + self.patience_s, first_acked)
        return committed

    @staticmethod
    def _steady(looks_at: dict, tp, value: int, looks: int) -> bool:
        """True at the ``looks``-th consecutive look that found ``value`` (then forgotten)."""
        last, count = looks_at.get(tp, (None, 0))
        count = count + 1 if last == value else 1
        if count < looks:
            looks_at[tp] = (value, count)
            return False
        looks_at.pop(tp, None)
        return True

    def check(self, events: Sequence) -> tuple[list, dict[object, int]]:
        """(events to process, partitions to seek back to an offset)."""
        kept, seek = [], {}
        for event in events:
            message = event.message
            if message.tp in seek or not self._admit(message, seek):
                message.acked = True  # not processed: it comes again after the seek
                continue
            kept.append(event)
        return kept, seek

    def _admit(self, message, seek: dict) -> bool:
        tp, offset = message.tp, message.offset
        if tp in self.seeking:
            target, give_up, lowest = self.seeking[tp]
            if offset > target:
                lowest = min(lowest, offset)
                if self.clock() < give_up:
                    self.seeking[tp] = (target, give_up, lowest)
                    return False
                if self.gapless(tp.topic):
                    return self._seek_again(tp, offset, target, lowest, seek)
                if offset > lowest:  # held back records first: they exist
                    log.warning("partition %s of %s: offsets %d-%d never came back: accepted "
                                "as a gap; resuming at %d", tp.partition, tp.topic, target,
                                lowest - 1, lowest)  # fmt: skip
                    self.seeking[tp] = (lowest, self.clock() + self.patience_s, lowest)
                    seek[tp] = lowest
                    return False
                log.warning("partition %s of %s: offsets %d-%d never came back: accepted as "
                            "a gap", tp.partition, tp.topic, target, offset - 1)  # fmt: skip
            if offset >= target:
                del self.seeking[tp]
        elif (expected := self._baseline(tp)) is not None and offset > expected:
            committed = self.asked[tp] if tp in self.asked else self._ask_group(tp)
            target = expected if committed is None else max(expected, committed)
            if (committed is None or committed < offset) and not self._no_record_between(
                    tp, target, offset):
                log.warning("partition %s of %s jumped from offset %d to %d: seeking back",
                            tp.partition, tp.topic, target, offset)  # fmt: skip
                self.seeking[tp] = (target, self.clock() + self.patience_s, offset)
                seek[tp] = target
                return False
        self.expected[tp] = max(self.expected.get(tp, 0), offset + 1)
        return True

    def _no_record_between(self, tp, target: int, offset: int) -> bool:
        """On a topic written in transactions, whether the broker's first record at or after
        ``target`` is ``offset``: the offsets between are transaction markers, not records
        skipped (asked once per jump, instead of seeking back and waiting ``patience_s`` for
        each transaction the producer committed)."""
        return not self.gapless(tp.topic) and self.next_record(tp, target) == offset

    def _baseline(self, tp) -> int | None:
        """``next_offset``, or when it is unknown (from the revocation until Faust's seek to the
        committed offsets returns: Faust resumes the partitions before that seek) the group's
        committed offset, asked once: a first record must not set the partition's baseline by
        itself (the chaos run's 3 purchases never decided: offset 38 taken as the start of a
        partition committed at 19, 35-37 skipped, Faust's gap filling committed past them)."""
        expected = self.next_offset(tp)
        return expected if expected is not None else self._ask_group(tp)

    def _ask_group(self, tp) -> int | None:
        """The group's committed offset as the broker has it, kept for the assignment (``asked``,
        read by ``next_offset``); None when the broker did not answer, and without asking
        again for ``ASK_AGAIN_S`` after that: each ask blocks the agent for up to 5 s, and
        a partition without a baseline meanwhile commits nothing (override 10)."""
        if self.clock() < self.unanswered.get(tp, float("-inf")) + self.ASK_AGAIN_S:
            return None
        committed = self.broker_committed(tp)
        if committed is None:
            self.unanswered[tp] = self.clock()
        else:
            self.asked[tp] = committed
            self.unanswered.pop(tp, None)
        return committed

    def _seek_again(self, tp, offset: int, target: int, lowest: int, seek: dict) -> bool:
        """A gapless partition's target did not come within the patience: seek it again (or
        the log start, when retention deleted the target); admit ``offset`` if it is that."""
        start = self.log_start(tp)
        resume = target if start is None or start <= target else start
        if offset == resume:
            del self.seeking[tp]
            self.expected[tp] = max(self.expected.get(tp, 0), offset + 1)
            return True
        if resume == target:
            log.warning("partition %s of %s: offset %d not back after %.0f s: seeking it "
                        "again", tp.partition, tp.topic, target, self.patience_s)  # fmt: skip
        else:
            log.warning("partition %s of %s: offsets %d-%d deleted by retention: resuming at "
                        "%d", tp.partition, tp.topic, target, resume - 1, resume)  # fmt: skip
        self.seeking[tp] = (resume, self.clock() + self.patience_s, lowest)
        seek[tp] = resume
        return False


class ReadOffsets(dict):
    """Faust's per-partition read offset (``Consumer._read_offset``): a record below it is
    dropped as already read. After a seek back, records of the fetch in progress still come
    and would move it past the target; while a partition is being ``rewound``, its read
    offset stays unset (nothing is dropped) until the target record arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.rewinds: dict[object, int] = {}

    def __missing__(self, tp):
        return None

    def __getitem__(self, tp):
        return None if tp in self.rewinds else super().__getitem__(tp)

    def __setitem__(self, tp, offset) -> None:
        target = self.rewinds.get(tp)
        if target is not None:
            if offset is None or offset != target:
                return
            del self.rewinds[tp]
        super().__setitem__(tp, offset)

    def rewind(self, tp, offset: int) -> None:
        self.rewinds[tp] = offset
        super().pop(tp, None)

    def __delitem__(self, tp) -> None:
        self.rewinds.pop(tp, None)
        super().__delitem__(tp)

    def pop(self, tp, *default):
        self.rewinds.pop(tp, None)
        return super().pop(tp, *default)

    def clear(self) -> None:
        self.rewinds.clear()
        super().clear()


MOVED_COORDINATOR = (kafka_errors.NotCoordinatorForGroupError,
                     kafka_errors.GroupCoordinatorNotAvailableError)


def group_error(code: int) -> type[kafka_errors.KafkaError] | None:
    """The error an OffsetFetch response's group-level ``error_code`` stands for (override 7);
    None for no error (a response of a version without the field is read as 0)."""
    error_type = kafka_errors.for_code(code)
    return None if error_type is kafka_errors.NoError else error_type


class GroupCoordinator(group_coordinator.GroupCoordinator):
    """aiokafka's coordinator, refusing an OffsetFetch answer that carries a group-level error
    (override 7). Raised from ``_send_req``: aiokafka's own callers then treat it as they treat
    the same error of one partition (retry after ``retry_backoff_ms``)."""

    WARN_EVERY_S = 5.0
    _refused, _warned_at = 0, float("-inf")

    async def _send_req(self, request):
        response = await super()._send_req(request)
        if isinstance(request, OffsetFetchRequest):
            error_type = group_error(getattr(response, "error_code", 0))
            if error_type is not None:
                self._refuse(error_type)
        return response

    def _refuse(self, error_type: type[kafka_errors.KafkaError]) -> None:
        if error_type in MOVED_COORDINATOR:
            self.coordinator_dead()
        self._refused += 1
        now = time.monotonic()
        if now - self._warned_at >= self.WARN_EVERY_S:
            self._warned_at = now
            log.warning("committed offsets of group %s not read: the broker answered %s "
                        "(%d times so far); retrying, never reading from the start instead",
                        self.group_id, error_type.__name__, self._refused)  # fmt: skip
        raise error_type(self.group_id)


async def seek_uncommitted(consumer, committed: dict, reset: str) -> None:
    """After aiokafka's ``seek_to_committed`` (which gave ``committed``): the partitions it
    left where its fetcher was (override 8), those committed at 0 sought to 0 and those with
    nothing committed reset as ``reset`` (``auto_offset_reset``) says. Partitions no longer
    assigned (a rebalance meanwhile) are left alone."""
    assigned = consumer.assignment()
    for tp, offset in committed.items():
        if offset == 0 and tp in assigned:
            consumer.seek(tp, 0)
    unset = [tp for tp, offset in committed.items() if offset is None and tp in assigned]
    if unset:
        await (consumer.seek_to_end if reset == "latest" else consumer.seek_to_beginning)(*unset)


class Fetcher(aiokafka_fetcher.Fetcher):
    """aiokafka's fetcher; with a ``reader`` (override 14) it sends no fetch request (offset
    resets still go) and tells the reader every position it is given."""

    reader: PartitionReader | None = None

    def _get_actions_per_node(self, assignment):
        requests, resets, timeout, invalid_metadata, resume = super()._get_actions_per_node(
            assignment)
        if self.reader is not None:
            requests = []
        return requests, resets, timeout, invalid_metadata, resume

    def seek_to(self, tp, offset):
        super().seek_to(tp, offset)
        if self.reader is not None:
            self.reader.place(tp, offset)

    def request_offset_reset(self, tps, strategy):
        if self.reader is not None:
            self.reader.drop(tps)  # placed again once aiokafka has the position
        return super().request_offset_reset(tps, strategy)


CONSUMER_THREAD = "faust-consumer"
READER_SYNC_S = 0.1  # the longest ``getmany`` waits on the reader before looking at the assignment


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    async def on_thread_started(self) -> None:
        """The thread named for what it runs (mode leaves ``Thread-N``): aiokafka's fetch
        rounds, heartbeats and commits, a share of the GIL of its own (``metrics.ThreadCpu``)."""
        name_this_thread(CONSUMER_THREAD)
        await super().on_thread_started()

    reader: PartitionReader | None = None
    _reader_assignment = None
    _reader_marks_at = 0.0

    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = get_settings().kafka.fetch_wait_max_ms
        return consumer

    async def on_start(self) -> None:
        await super().on_start()
        settings = get_settings()
        if settings.stream.fetcher == "librdkafka" and not self.app.client_only:
            consumer = self._ensure_consumer()
            conf = settings.kafka.consumer_conf(
                f"{self.app.conf.id}-reader",  # never joined: the reader only assigns
                **{"isolation.level": "read_committed"
                   if consumer._fetcher._isolation_level == aiokafka_fetcher.READ_COMMITTED
                   else "read_uncommitted",  # as aiokafka reads: markers are no records
                   "enable.auto.offset.store": False,
                   "queued.max.messages.kbytes": 16384})
            self.reader = PartitionReader(conf, self.consumer.loop)
            consumer._fetcher.reader = self.reader
            self.reader.start()

    async def on_thread_stop(self) -> None:
        if self.reader is not None:
            self.reader.stop()
        await super().on_thread_stop()

    async def getmany(self, active_partitions, timeout):
        """The reader's records when there is one (override 14), on the event loop."""
        reader = self.reader
        if reader is None:
            return await super().getmany(active_partitions, timeout)
        consumer = self._ensure_consumer()
        if not self.consumer.flow_active:
            return {}
        taken = None if active_partitions is None else (
            active_partitions | self.consumer._buffered_partitions)
        assignment = self._sync_reader(reader, consumer, taken)
        await reader.wait(active_partitions, min(timeout, READER_SYNC_S))
        records = reader.take(active_partitions, consumer._max_poll_records or 500)
        if records and assignment is not None:
            for tp, messages in records.items():
                state = assignment.state_value(tp)
                if state is not None and state.has_valid_position:
                    state._position = messages[-1].offset() + 1  # as aiokafka's consumed_to
        return records

    def highwater(self, tp):
        """aiokafka's highwater of ``tp``; None (unknown, as aiokafka says before it knows)
        once aiokafka no longer has ``tp`` assigned. Faust's ``getmany`` asks it for each record
        it yields, between awaits: a record taken from the reader just before a revocation (the
        records are taken on the loop, while aiokafka revokes on its own thread before Faust
        stops the flow) made aiokafka's assertion crash the worker (one of three, a
        ``--workers 3`` bench). The record itself goes on as a revoked partition's does."""
        if not self._ensure_consumer()._subscription.is_assigned(tp):
            return None
        return super().highwater(tp)

    def _sync_reader(self, reader: PartitionReader, consumer, taken: Set | None = None):
        """The reader reads what aiokafka has assigned and Faust takes records of (``taken``;
        None: all), from aiokafka's positions: a new assignment starts it afresh, a partition
        whose position is being reset waits for it, one Faust does not take is dropped (placed
        again at its position when taken again). aiokafka's highwaters and fetch times are set
        from the reader's."""
        subscription = consumer._subscription.subscription
        assignment = subscription.assignment if subscription is not None else None
        placed = reader.placed()
        if assignment is None or not assignment.active:
            if placed:
                reader.drop(placed)
            self._reader_assignment = None
            return None
        if assignment is not self._reader_assignment:
            self._reader_assignment = assignment
            if placed:
                reader.drop(placed)
                placed = {}
        wanted = assignment.tps if taken is None else assignment.tps & taken
        for tp in wanted:
            if tp not in placed:
                state = assignment.state_value(tp)
                if state.has_valid_position:
                    reader.place(tp, state.position)
        gone = [tp for tp in placed if tp not in wanted]
        if gone:
            reader.drop(gone)
        now = time.monotonic()
        if now - self._reader_marks_at >= READER_SYNC_S:
            self._reader_marks_at = now
            for tp in assignment.tps:
                state = assignment.state_value(tp)
                high = reader.highwaters.get(tp)
                if high is not None:
                    state.highwater = high
                at = reader.fetched_at.get(tp)
                if at is not None:
                    state.timestamp = int(at * 1000)
        return assignment

    async def seek_to_committed(self):
        return await self.call_thread(self._seek_to_committed)

    async def _seek_to_committed(self):
        """aiokafka's seek, then the partitions it skipped (override 8)."""
        consumer = self._ensure_consumer()
        committed = await consumer.seek_to_committed()
        await seek_uncommitted(consumer, committed, self.consumer.app.conf.consumer_auto_offset_reset)
        return committed


class Resumed:
    """Awaiting it continues ``coro``, a coroutine whose first step (``send(None)``) yielded
    ``yielded``, as the task running it would have: what it yields goes up to the awaiting
    task, what comes back (a value, an exception, a cancellation) goes down to it."""

    __slots__ = ("coro", "yielded")

    def __init__(self, coro, yielded) -> None:
        self.coro, self.yielded = coro, yielded

    def __await__(self):
        coro, yielded = self.coro, self.yielded
        while True:
            try:
                sent = yield yielded
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 (a cancellation too: passed down)
                try:
                    yielded = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    yielded = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


class Consumer(faust_aiokafka.Consumer):
    revoked_generation = -1  # the generation whose partitions were last revoked
    offset_guard: OffsetGuard | None = None

    before_commit = None  # async () -> None: the agents' own producer is acknowledged

    async def wait_first(self, *coros, timeout=None) -> WaitResults:
        """mode's ``wait_first``, the first coroutine's first step run at once (override 12):
        when it completes, the others are closed unawaited and its result returned (the
        winners: that coroutine alone); else mode's with the rest of it."""
        first = coros[0] if coros else None
        if timeout is not None or not asyncio.iscoroutine(first):
            return await super().wait_first(*coros, timeout=timeout)
        try:
            yielded = first.send(None)
        except StopIteration as stop:
            for other in coros[1:]:
                if asyncio.iscoroutine(other):
                    other.close()
            if self._stopped.is_set() or self._crashed.is_set():
                return WaitResults([], [], True)
            return WaitResults([first], [stop.value], False)
        except BaseException:
            for other in coros[1:]:
                if asyncio.iscoroutine(other):
                    other.close()
            raise
        return await super().wait_first(Resumed(first, yielded), *coros[1:])

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _to_message(self, tp, record) -> ConsumerMessage:
        """A librdkafka record as Faust's message (override 14); aiokafka's as Faust makes it."""
        if self._thread.reader is None:
            return super()._to_message(tp, record)
        kind, stamp = record.timestamp()
        key, value = record.key(), record.value()
        return ConsumerMessage(
            record.topic(), record.partition(), record.offset(),
            stamp / 1000.0 if kind else None,  # type: ignore[arg-type]
            kind - 1 if kind else None,  # type: ignore[arg-type]  (aiokafka: 0 create, 1 append)
            record.headers() or [], key, value, None,
            len(key) if key is not None else 0, len(value) if value is not None else 0,
            tp, generation_id=self.app.consumer_generation_id)

    async def _handle_attached(self, commit_offsets) -> None:
        """Every offset commit (periodic or at a rebalance) first waits for ``before_commit``:
        what the batches it covers sent through a producer other than Faust's is then
        acknowledged before the group moves past them."""
        if self.before_commit is not None:
            await self.before_commit()
        await super()._handle_attached(commit_offsets)

    async def on_partitions_revoked(self, revoked) -> None:
        self.revoked_generation = max(self.revoked_generation, self.app.consumer_generation_id)
        if self.offset_guard is not None:
            self.offset_guard.reset()
        for tp in revoked:
            self._committed_read.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._read_offset = ReadOffsets()
        self._group_offsets = None  # a confluent consumer: committed offsets, watermarks, a record
        self._committed_read: dict[TP, int] = {}  # at assignment; 0: the group has none

    async def seek_to_committed(self):
        committed = await super().seek_to_committed()
        self._committed_read.update(
            {TP(tp.topic, tp.partition): offset or 0 for tp, offset in committed.items()})
        return committed

    async def seek(self, partition, offset: int) -> None:
        await super().seek(partition, offset)
        self._read_offset.rewind(partition, offset)

    def group_committed(self, tp) -> int | None:
        """The group's committed offset of ``tp`` as the broker has it now (0: the group has
        none, it reads from the earliest; None: the broker did not answer). Blocking, bounded:
        called only when a partition seems to jump ahead or to stall."""
        from confluent_kafka import KafkaException, TopicPartition

        try:
            found = self._offset_reader().committed([TopicPartition(tp.topic, tp.partition)],
                                                    timeout=5)  # fmt: skip
        except KafkaException as exc:
            log.warning("committed offset of %s[%s] not read: %s", tp.topic, tp.partition, exc)
            return None
        if not found or found[0].error is not None:
            return None
        return max(found[0].offset, 0)  # OFFSET_INVALID (-1001): nothing committed

    def log_start(self, tp) -> int | None:
        """The partition's first offset still held by the broker (None: it did not answer).
        Blocking, bounded: called only when a sought offset did not come back."""
        from confluent_kafka import KafkaException, TopicPartition

        try:
            low, _ = self._offset_reader().get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=5)
        except KafkaException as exc:
            log.warning("log start of %s[%s] not read: %s", tp.topic, tp.partition, exc)
            return None
        return low

    def next_record(self, tp, offset: int) -> int | None:
        """The offset of the first record of ``tp`` at or after ``offset``, as this consumer
        reads the topic (aiokafka's default isolation, read_uncommitted: transaction markers
        are no records); None when the broker did not bring one within 2 s. Blocking, bounded:
        called only when a partition of a topic written in transactions jumps ahead."""
        from confluent_kafka import KafkaException, TopicPartition

        reader = self._offset_reader()
        try:
            reader.assign([TopicPartition(tp.topic, tp.partition, offset)])
            found = reader.consume(1, timeout=2)
        except KafkaException as exc:
            log.warning("records of %s[%s] not read: %s", tp.topic, tp.partition, exc)
            return None
        finally:
            reader.unassign()
        return next((m.offset() for m in found if m.error() is None), None)

    def _offset_reader(self):
        from confluent_kafka import Consumer as OffsetReader

        if self._group_offsets is None:  # reads as aiokafka does (transaction markers: no records)
            self._group_offsets = OffsetReader(get_settings().kafka.consumer_conf(
                self.app.conf.id, **{"isolation.level": "read_uncommitted"}))
        return self._group_offsets

    def committed_offset(self, tp) -> int | None:
        """The partition's committed offset as Faust last read or wrote it; 0 when the group
        has none (Faust stores 0 as None; the group reads from the earliest offset); None while
        it has not been read since the assignment (override 7: unknown is not 0)."""
        known = self._committed_offset.get(tp)
        return known if known is not None else self._committed_read.get(tp)

    def is_stale(self, message) -> bool:
        return is_stale(message, self.app.consumer_generation_id, self.revoked_generation)

    async def _add_gap(self, tp, offset_from: int, offset_to: int) -> None:
        """Faust counts the offsets between two records fetched apart as acked (a gap: a
        transaction marker, a compacted record), and commits past them. On a gapless topic a
        gap is records the fetcher skipped (override 9): not acked; the guard seeks them back."""
        guard = self.offset_guard
        if guard is not None and guard.gapless(tp.topic):
            return
        await super()._add_gap(tp, offset_from, offset_to)

    def _new_offset(self, tp) -> int | None:
        """On a gapless topic only the run of acked offsets from the committed offset on is
        committed (override 10); elsewhere Faust's rule, gaps included."""
        guard = self.offset_guard
        if guard is None or not guard.gapless(tp.topic):
            return super()._new_offset(tp)
        acked = self._acked[tp]
        before = set(acked)
        end = commit_end(acked, self.commit_base(tp))
        self._acked_index[tp].difference_update(before.difference(acked))
        return end

    def commit_base(self, tp) -> int | None:
        """Where a gapless partition's next commit starts: its committed offset, or the
        group's when the guard asked it and it is further (Faust's read lagged it: override 4)."""
        committed = self.committed_offset(tp)
        asked = self.offset_guard.asked.get(tp) if self.offset_guard is not None else None
        if asked is not None and (committed is None or asked > committed):
            return asked
        return committed

    def first_acked(self, tp) -> int | None:
        """The lowest offset of ``tp`` acked and not committed yet."""
        acked = self._acked.get(tp)
        return min(acked) if acked else None

    def ack(self, message) -> bool:
        """Refuse acks that could commit an offset no current record was processed for."""
        if self.is_stale(message):
            message.acked = True  # nobody acks it again; the redelivered copy is acked instead
            return False
        return super().ack(message)


class FlowControl(FlowControlEvent):
    """Flow control whose ``resume`` leaves the stream queues as they are (override 11)."""

    def resume(self) -> None:
        self._suspend.clear()
        self._resume.set()


class App(faust.App):
    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return FlowControl(loop=self.loop)


class Worker(faust.Worker):
    def on_setup_root_logger(self, logger, level: int) -> None:
        self.spinner = None  # Faust's would set the root logger to DEBUG (override 6)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


def register() -> None:
    drivers.TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
    # aiokafka's consumer builds its coordinator from this name when it starts (override 7)
    aiokafka_consumer.GroupCoordinator = GroupCoordinator
    aiokafka_consumer.Fetcher = Fetcher  # override 14
