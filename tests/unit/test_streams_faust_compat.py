"""The Faust overrides: stale-generation records are never processed or acked, and no
offset is committed before the agents' outputs are acknowledged."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest
from aiokafka.consumer import fetcher as aiokafka_fetcher
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streams.faust_compat import (
    BACKLOG_BEHIND_S,
    BACKLOG_FILL_S,
    PATIENT_GAP_S,
    Consumer,
    ConsumerThread,
    Fetcher,
    FlowControl,
    OffsetGuard,
    _fill,
    behind_s,
    commit_end,
    current_events,
    fill_time,
    is_stale,
    to_process,
)

pytestmark = pytest.mark.unit


def event(partition: int, offset: int, generation: int, topic: str = "t"):
    message = SimpleNamespace(tp=TP(topic, partition), offset=offset, generation_id=generation,
                              acked=False)
    return SimpleNamespace(message=message)


def test_a_message_from_a_revoked_or_older_generation_is_stale():
    assert not is_stale(event(0, 1, 3).message, current_generation=3, revoked_generation=2)
    assert is_stale(event(0, 1, 2).message, current_generation=3, revoked_generation=2)
    # revoked, not yet reassigned: the current generation id has not moved yet
    assert is_stale(event(0, 1, 3).message, current_generation=3, revoked_generation=3)
    assert not is_stale(SimpleNamespace(offset=1), current_generation=3, revoked_generation=2)


def test_a_batch_keeps_each_current_record_once_in_order():
    consumer = SimpleNamespace(is_stale=lambda m: is_stale(m, 5, 4))
    app = SimpleNamespace(consumer=consumer, consumer_generation_id=5)
    # take_events kept stale copies of offsets 39-41 across a rebalance; the redelivered
    # copies of 39 and 40 came again, 40 even twice
    batch = [event(2, 39, 4), event(2, 40, 4), event(2, 41, 4), event(2, 39, 5),
             event(2, 40, 5), event(2, 40, 5), event(1, 7, 5)]
    kept = current_events(batch, app)
    assert [(e.message.tp[1], e.message.offset, e.message.generation_id) for e in kept] == [
        (2, 39, 5), (2, 40, 5), (1, 7, 5)]


def test_a_partition_that_jumps_ahead_is_sought_back_and_waits_for_the_missing_offset():
    now = [0.0]
    guard = OffsetGuard(patience_s=10, clock=lambda: now[0])
    first = [event(0, o, 1) for o in (102, 103)] + [event(1, 84, 1)]
    kept, seek = guard.check(first)
    assert len(kept) == 3 and seek == {}
    # Faust skipped 104-169 on partition 0: nothing of it is processed, it is sought back
    jumped = [event(0, 170, 1), event(0, 171, 1), event(1, 85, 1)]
    kept, seek = guard.check(jumped)
    assert [(e.message.tp.partition, e.message.offset) for e in kept] == [(1, 85)]
    assert seek == {TP("t", 0): 104}
    assert all(e.message.acked for e in jumped[:2])
    # records fetched before the seek still arrive first: held back until 104 comes
    kept, seek = guard.check([event(0, 172, 1), event(0, 104, 1), event(0, 105, 1)])
    assert [e.message.offset for e in kept] == [104, 105] and seek == {}


def test_a_gap_that_never_fills_is_accepted_after_the_patience():
    now = [0.0]
    guard = OffsetGuard(patience_s=10, clock=lambda: now[0])
    guard.check([event(0, 5, 1)])
    assert guard.check([event(0, 7, 1)])[1] == {TP("t", 0): 6}
    assert guard.check([event(0, 7, 1)])[0] == []
    now[0] = 11.0  # offset 6 is a transaction marker: it never comes
    assert [e.message.offset for e in guard.check([event(0, 7, 1)])[0]] == [7]


def test_a_jump_to_the_groups_committed_offset_is_no_jump():
    """Faust's cached committed offset (0) lagged the group's (7): records 7.. are the next
    ones, not a hole; seeking back to 0 held them back until they were skipped (chaos run)."""
    guard = OffsetGuard(patience_s=10, clock=lambda: 0.0, committed_of=lambda tp: 0,
                        broker_committed=lambda tp: 7)  # fmt: skip
    kept, seek = guard.check([event(4, 7, 2), event(4, 8, 2)])
    assert [e.message.offset for e in kept] == [7, 8] and seek == {}
    # a real hole after the group's commit is still sought back, to the later of the two
    guard = OffsetGuard(patience_s=10, clock=lambda: 0.0, committed_of=lambda tp: 0,
                        broker_committed=lambda tp: 3)  # fmt: skip
    assert guard.check([event(4, 7, 2)]) == ([], {TP("t", 4): 3})


def test_after_the_patience_the_partition_resumes_at_the_first_record_held_back():
    now = [0.0]
    guard = OffsetGuard(patience_s=10, clock=lambda: now[0], committed_of=lambda tp: 0)
    assert guard.check([event(4, 7, 2)])[1] == {TP("t", 4): 0}
    held = [event(4, o, 2) for o in range(8, 27)]
    assert guard.check(held) == ([], {})
    now[0] = 11.0  # 0-6 never came back; 7-26 were held back: resume at 7, not at 27
    kept, seek = guard.check([event(4, 27, 2)])
    assert kept == [] and seek == {TP("t", 4): 7}
    kept, seek = guard.check([event(4, o, 2) for o in (7, 8, 9)])
    assert [e.message.offset for e in kept] == [7, 8, 9] and seek == {}


def test_read_offsets_hold_a_rewound_partition_until_its_target_arrives():
    """Faust drops a record below the read offset: after a seek back to 0, records 8 and 9
    of the fetch in progress must not move it, or the re-fetched 0.. would be dropped."""
    from streams.faust_compat import ReadOffsets

    tp = TP("t", 4)
    offsets = ReadOffsets()
    offsets[tp] = 7
    offsets.rewind(tp, 0)
    offsets[tp] = 8
    offsets[tp] = 9
    assert offsets[tp] is None  # nothing dropped: 0.. pass Faust's check
    offsets[tp] = 0
    assert offsets[tp] == 0
    offsets[tp] = 1
    assert offsets[tp] == 1
    offsets.rewind(tp, 5)
    offsets.pop(tp, None)  # revoked: the rewind goes with it
    offsets[tp] = 9
    assert offsets[tp] == 9 and offsets[TP("t", 5)] is None


def test_every_offset_commit_first_waits_for_the_agents_outputs(monkeypatch) -> None:
    order: list[str] = []

    async def outputs_acknowledged() -> None:
        await asyncio.sleep(0)  # the flush suspends: Faust's path must still wait for it
        order.append("outputs acknowledged")

    async def fausts_own(self, commit_offsets) -> None:
        order.append(f"faust commit path {dict(commit_offsets)}")

    monkeypatch.setattr(faust_aiokafka.Consumer, "_handle_attached", fausts_own)
    consumer = Consumer.__new__(Consumer)  # the override alone: no broker behind it
    consumer.before_commit = outputs_acknowledged
    asyncio.run(consumer._handle_attached({"tp": 7}))
    assert order == ["outputs acknowledged", "faust commit path {'tp': 7}"]


def test_the_worker_leaves_the_root_logger_at_the_level_asked_for() -> None:
    """Faust's own Worker sets the root logger to DEBUG at WARN and adds a spinner handler:
    every debug call of aiokafka and Faust then builds a record (override 6)."""
    import logging

    import faust

    from streams.app import app
    from streams.faust_compat import Worker

    assert app.conf.Worker is Worker
    root = logging.getLogger()
    before = (root.level, list(root.handlers))
    try:
        for worker_class, expected_debug in ((faust.Worker, True), (Worker, False)):
            root.handlers[:] = [logging.StreamHandler()]
            root.setLevel(logging.WARNING)
            worker = worker_class.__new__(worker_class)  # no services: only the logging hook
            worker.spinner = object()
            worker.on_setup_root_logger(root, logging.WARNING)
            assert root.isEnabledFor(logging.DEBUG) is expected_debug
            assert len(root.handlers) == 1 + expected_debug
    finally:
        root.setLevel(before[0])
        root.handlers[:] = before[1]


def test_an_offset_fetch_refused_for_the_whole_group_raises_instead_of_reading_no_offsets():
    """A restarted broker answers OffsetFetch with a group-level error and no partitions;
    aiokafka alone read that as "nothing committed" and went back to offset 0 (override 7)."""
    from aiokafka import errors

    from streams.faust_compat import GroupCoordinator, group_error

    assert group_error(0) is None
    assert group_error(14) is errors.GroupLoadInProgressError and group_error(14).retriable
    assert group_error(16) is errors.NotCoordinatorForGroupError
    dead: list[bool] = []
    coordinator = GroupCoordinator.__new__(GroupCoordinator)  # the check alone: no client
    coordinator.group_id, coordinator.coordinator_dead = "g", lambda: dead.append(True)
    with pytest.raises(errors.GroupLoadInProgressError):
        coordinator._refuse(errors.GroupLoadInProgressError)
    assert dead == []  # still the coordinator: only loading
    with pytest.raises(errors.NotCoordinatorForGroupError):
        coordinator._refuse(errors.NotCoordinatorForGroupError)
    assert dead == [True]  # looked up again before the retry


def test_a_committed_offset_not_read_is_unknown_and_the_guard_never_seeks_to_zero(monkeypatch):
    """Before its committed offsets are read (or while the broker cannot answer), a partition's
    start is unknown, not 0: the guard neither takes offset 60 for a jump nor calls it stalled."""
    from aiokafka import TopicPartition

    async def read(self):
        return {TopicPartition("t", 4): None, TopicPartition("t", 5): 60}

    monkeypatch.setattr(faust_aiokafka.Consumer, "seek_to_committed", read)
    consumer = Consumer.__new__(Consumer)
    consumer._committed_offset, consumer._committed_read = {}, {}
    assert consumer.committed_offset(TP("t", 4)) is None
    guard = OffsetGuard(patience_s=10, clock=lambda: 0.0, committed_of=consumer.committed_offset,
                        broker_committed=lambda tp: None)  # the broker cannot answer either
    assert guard.stalled(TP("t", 4), highwater=100) is None
    assert guard.stalled(TP("t", 4), highwater=100) is None
    kept, seek = guard.check([event(4, 60, 1)])
    assert [e.message.offset for e in kept] == [60] and seek == {}
    asyncio.run(consumer.seek_to_committed())  # the group has nothing on 4, 60 on 5
    assert consumer.committed_offset(TP("t", 4)) == 0
    assert consumer.committed_offset(TP("t", 5)) == 60
    consumer._committed_offset[TP("t", 5)] = 75  # Faust committed since
    assert consumer.committed_offset(TP("t", 5)) == 75


def guard_asking_group(committed: int):
    """A guard that knows no committed offset of its own; the group's is ``committed``, and
    each partition it asks about is recorded."""
    asked: list[TP] = []

    def group(tp):
        asked.append(tp)
        return committed

    guard = OffsetGuard(patience_s=10, clock=lambda: 0.0, committed_of=lambda tp: None,
                        broker_committed=group)  # fmt: skip
    return guard, asked


def test_a_stalled_partition_whose_committed_offset_faust_never_read_is_placed_by_the_group():
    """Faust's seek to the committed offsets failed after a broker restart, and the partition
    then lost its place: with its start unknown the guard would wait for it for ever; it asks
    the group's committed offset and seeks back there after two looks."""
    guard, asked = guard_asking_group(40)
    tp = TP("t", 3)
    assert guard.stalled(tp, highwater=0) is None and asked == []  # nothing waiting: not asked
    assert guard.stalled(tp, highwater=90) is None and asked == [tp]
    assert guard.stalled(tp, highwater=90) == 40 and asked == [tp]  # asked once, remembered
    kept, seek = guard.check([event(3, 40, 1), event(3, 41, 1)])
    assert [e.message.offset for e in kept] == [40, 41] and seek == {}
    guard.reset()  # revoked: what was asked goes with the assignment
    assert guard.next_offset(tp) is None


def test_a_gapless_partition_is_sought_again_until_its_offset_comes_back():
    """Purchases have no holes: a target that is slow to come back (a broker restarting, a
    loaded host) is sought again after each patience, never skipped."""
    now = [0.0]
    guard = OffsetGuard(patience_s=10, clock=lambda: now[0], gapless={"t"}.__contains__,
                        log_start=lambda tp: 0)  # fmt: skip
    guard.check([event(0, 5, 1)])
    assert guard.check([event(0, 9, 1)])[1] == {TP("t", 0): 6}
    for n in (1, 2, 3):
        now[0] = 11.0 * n
        kept, seek = guard.check([event(0, 9, 1)])
        assert kept == [] and seek == {TP("t", 0): 6}
    kept, seek = guard.check([event(0, o, 1) for o in (6, 7, 8, 9)])
    assert [e.message.offset for e in kept] == [6, 7, 8, 9] and seek == {}


def test_a_gapless_partition_resumes_at_the_log_start_when_retention_deleted_the_target():
    now = [0.0]
    guard = OffsetGuard(patience_s=10, clock=lambda: now[0], gapless={"t"}.__contains__,
                        log_start=lambda tp: 8)  # fmt: skip
    guard.check([event(0, 5, 1)])
    assert guard.check([event(0, 9, 1)])[1] == {TP("t", 0): 6}
    now[0] = 11.0
    kept, seek = guard.check([event(0, 9, 1)])
    assert kept == [] and seek == {TP("t", 0): 8}  # 6-7 are gone: resume at 8, not at 9
    kept, seek = guard.check([event(0, 8, 1), event(0, 9, 1)])
    assert [e.message.offset for e in kept] == [8, 9] and seek == {}


def test_a_batch_fills_for_the_linger_unless_a_full_batch_is_already_waiting():
    linger, size = 0.01, 500
    assert fill_time(0, size, linger) == linger  # records come as they are produced
    assert fill_time(size - 1, size, linger) == linger
    assert fill_time(size, size, linger) == BACKLOG_FILL_S  # a backlog: fill the batch
    assert fill_time(4 * size, size, linger) == BACKLOG_FILL_S
    assert fill_time(4 * size, size, 1.0) == 1.0  # a linger longer than the backlog's fill


def test_a_batch_whose_first_record_waited_fills_as_a_backlog():
    """Records written more than ``BACKLOG_BEHIND_S`` ago waited anyway: their batch fills up
    to the batch size (when the entity replica no longer held batches back, the worker took
    batches of ~60 records on a backlog, and spent ~40 % more CPU per purchase)."""
    linger, size = 0.01, 500
    assert fill_time(3, size, linger, behind=0.05) == linger
    assert fill_time(3, size, linger, behind=BACKLOG_BEHIND_S) == BACKLOG_FILL_S
    stamped = [SimpleNamespace(message=SimpleNamespace(timestamp=time.time() - 2.0))]
    assert 2.0 <= behind_s(stamped) < 3.0
    assert behind_s([]) == 0.0
    assert behind_s([SimpleNamespace(message=SimpleNamespace(timestamp=None))]) == 0.0


class Deliveries:
    """A clock for ``_fill`` that is also Faust's delivery: each reading moves time 1 ms on,
    and every ``every_s`` a burst of 10 records comes, ``bursts`` times. No real time passes."""

    def __init__(self, events: list, bursts: int, every_s: float):
        self.now, self.events, self.left = 0.0, events, bursts
        self.every_s, self.due = every_s, every_s

    def __call__(self) -> float:
        self.now += 0.001
        if self.left and self.now >= self.due:
            self.events.extend([object()] * 10)
            self.left, self.due = self.left - 1, self.due + self.every_s
        return self.now


def test_a_patient_fill_waits_for_records_until_full_a_gap_or_the_deadline():
    def fill(patient: bool, bursts: int, every_s: float = 0.008,
             deadline_s: float = 0.5) -> tuple[int, float]:
        async def run() -> tuple[int, float]:
            events, queue = [], asyncio.Queue()
            if patient:  # the stream not empty: the fill turns the loop without sleeping
                queue.put_nowait(object())
            clock = Deliveries(events, bursts, every_s)
            await _fill(events, 30, deadline_s, queue, patient=patient, clock=clock)
            return len(events), clock.now

        return asyncio.run(run())

    count, _ = fill(patient=False, bursts=5)
    assert count == 0  # not patient: the stream is empty, the batch ends
    count, took = fill(patient=True, bursts=5)
    assert count == 30 and took < 0.03  # full after three bursts
    count, took = fill(patient=True, bursts=1)
    assert count == 10 and 0.008 + PATIENT_GAP_S <= took < 0.008 + PATIENT_GAP_S + 0.005
    count, took = fill(patient=True, bursts=100, deadline_s=0.02)
    assert count == 20 and 0.02 <= took < 0.025  # the deadline ends it
    count, took = fill(patient=True, bursts=5, every_s=2 * PATIENT_GAP_S)
    assert count == 0 and PATIENT_GAP_S <= took < PATIENT_GAP_S + 0.005  # slower than the gap

def test_a_first_record_before_the_committed_offset_is_known_is_checked_against_the_group():
    """Chaos run, seed 11: after a rebalance Faust resumed purchases partition 5 before its seek
    to the committed offsets returned; the first record, 38, came with no committed offset
    known and became the guard's baseline (the group had 19: 35-37 were never decided). The
    guard asks the group instead, and seeks back."""
    guard, _ = guard_asking_group(19)
    kept, seek = guard.check([event(5, 38, 4)])
    assert kept == [] and seek == {TP("t", 5): 19}
    kept, seek = guard.check([event(5, o, 4) for o in (19, 20)])
    assert [e.message.offset for e in kept] == [19, 20] and seek == {}
    assert guard.next_offset(TP("t", 5)) == 21
    # a partition whose first record is the group's committed offset is admitted at once
    kept, seek = guard.check([event(3, 19, 4)])
    assert [e.message.offset for e in kept] == [19] and seek == {}


def test_faust_commits_no_gap_on_a_gapless_topic():
    """Faust takes the offsets between two records read apart for a gap and commits through it
    (committed 19, 38-42 acked: it committed 39, then 40). On purchases the gap is records the
    fetcher skipped: the commit stays at the committed offset until they are processed."""
    from collections import defaultdict

    from intervaltree import IntervalTree

    def consumer():
        c = Consumer.__new__(Consumer)
        c.offset_guard = OffsetGuard(gapless={"purchases"}.__contains__)
        c._committed_offset = defaultdict(lambda: None)
        c._gap, c._acked, c._acked_index = defaultdict(IntervalTree), defaultdict(list), defaultdict(set)
        return c

    for topic, commits in (("purchases", [None]), ("changelog", [39, 40])):
        c, tp = consumer(), TP(topic, 5)
        c._committed_offset[tp] = 19
        asyncio.run(c._add_gap(tp, 20, 40))  # read offset 19, then 40 delivered
        for offset in (38, 39, 40, 41, 42):
            c._acked[tp].append(offset)
            c._acked_index[tp].add(offset)
        got = []
        for _ in commits:
            got.append(c._new_offset(tp))
            c._committed_offset[tp] = got[-1] if got[-1] is not None else 19
        assert got == commits, topic


def gapless_consumer(committed_read: dict | None = None):
    """A ``Consumer`` with only the offset bookkeeping, purchases gapless."""
    from collections import defaultdict

    from intervaltree import IntervalTree

    c = Consumer.__new__(Consumer)
    c.offset_guard = OffsetGuard(gapless={"purchases"}.__contains__)
    c._committed_offset, c._committed_read = defaultdict(lambda: None), dict(committed_read or {})
    c._gap, c._acked, c._acked_index = defaultdict(IntervalTree), defaultdict(list), defaultdict(set)
    return c


def acked(c, tp, offsets) -> None:
    for offset in offsets:
        c._acked[tp].append(offset)
        c._acked_index[tp].add(offset)


def test_the_commit_is_the_run_of_acked_offsets_that_starts_at_the_committed_offset():
    assert commit_end([212, 210, 211, 215], 210) == 213
    assert commit_end([211, 212, 213], 210) is None  # the record at 210 not processed
    assert commit_end([214, 215], None) is None  # committed offset unknown: nothing
    assert commit_end([], 210) is None
    rest = [208, 209, 210, 210, 211, 213]  # 208-209 acked again after a redelivery
    assert commit_end(rest, 210) == 212 and rest == [213]


def test_faust_commits_no_record_past_one_not_processed():
    """CI: purchases partition 2 committed at 210, 214 onwards processed, 210-213 never
    decided, and Faust committed past them: its check that acked offsets start at the committed
    offset is off by one (211 passed) and skipped while the committed offset is unknown. On a
    gapless topic nothing is committed past the committed offset's record until it is acked."""
    tp, other = TP("purchases", 2), TP("changelog", 2)
    c = gapless_consumer()
    c._committed_offset[tp] = c._committed_offset[other] = 210
    acked(c, tp, range(211, 220))
    acked(c, other, range(211, 220))
    assert c._new_offset(tp) is None
    assert c._new_offset(other) == 220  # Faust's own rule elsewhere (what it did on purchases)
    acked(c, tp, [210])
    assert c._new_offset(tp) == 220 and c._acked[tp] == [] and c._acked_index[tp] == set()

    c = gapless_consumer()  # from the revocation until Faust's seek returns: unknown
    acked(c, tp, range(214, 220))
    assert c._new_offset(tp) is None
    c._committed_read[tp] = 210  # read at the assignment
    assert c._new_offset(tp) is None and c.first_acked(tp) == 214
    acked(c, tp, range(210, 214))
    assert c._new_offset(tp) == 220 and c.first_acked(tp) is None


def test_a_commit_held_by_a_record_never_processed_seeks_the_partition_back_to_it():
    """Records 214 onwards were processed and 210-213 never came: over two looks with the
    commit held at 210, the partition is sought back to 210; records after it are held back
    until 210 arrives, then 211 onwards pass again (they are skipped as decided)."""
    clock = [0.0]
    guard = OffsetGuard(clock=lambda: clock[0], gapless={"t"}.__contains__)
    tp = TP("t", 2)
    assert guard.check([event(2, o, 4) for o in range(214, 218)])[0]  # the baseline: unknown
    assert guard.held_at(tp, 210, 214) is None  # one look
    assert guard.held_at(tp, 210, None) is None  # acked up: not held
    assert guard.held_at(tp, 210, 214) is None
    assert guard.held_at(tp, 210, 214) == 210  # two looks in a row
    assert guard.held_at(tp, 210, 214) is None  # being sought
    kept, seek = guard.check([event(2, 217, 4)])  # the fetch in progress
    assert kept == [] and seek == {}
    kept, seek = guard.check([event(2, o, 4) for o in range(210, 216)])
    assert [e.message.offset for e in kept] == list(range(210, 216)) and seek == {}
    assert guard.held_at(tp, 210, 210) is None and guard.held_at(tp, None, 214) is None


def test_a_commit_starts_at_the_group_offset_the_guard_asked_when_faust_read_an_older_one():
    """Faust's committed offset can lag the group's (read before the previous owner's last
    commit landed): records from the group's offset on, admitted by the guard, are committed
    without waiting for offsets the previous owner processed."""
    tp = TP("purchases", 2)
    c = gapless_consumer({tp: 240})
    c.offset_guard.broker_committed = {tp: 250}.get
    assert [e.message.offset for e in c.offset_guard.check([event(2, 250, 4, "purchases")])[0]] == [250]
    acked(c, TP("purchases", 2), range(250, 255))
    assert c.commit_base(tp) == 250 and c._new_offset(tp) == 255


def test_after_a_seek_back_the_copy_of_a_record_the_guard_admits_is_processed_and_no_other():
    """A test run lost purchases 193-200 of partition 4: the guard sought the partition back to
    109 (110 came first); the next batch held the fetch in progress's copies of 193-200, then
    109-200 again. The repeats were dropped before the guard, keeping the first copies, which
    the guard held back: neither copy was processed, and the dropped ones were acked."""
    consumer = SimpleNamespace(is_stale=lambda m: is_stale(m, 3, 2))
    app = SimpleNamespace(consumer=consumer, consumer_generation_id=3)
    guard = OffsetGuard(patience_s=10, clock=lambda: 0.0, committed_of={TP("t", 4): 109}.get)
    kept, seek = to_process([event(4, 110, 3)], app, guard)
    assert kept == [] and seek == {TP("t", 4): 109}
    in_flight = [event(4, o, 3) for o in range(193, 201)]
    again = [event(4, o, 3) for o in range(109, 201)]
    stale = event(0, 17, 2)
    batch = in_flight + [stale] + again
    kept, seek = to_process(batch, app, guard)
    assert [e.message.offset for e in kept] == list(range(109, 201)) and seek == {}
    assert all(e.message is k.message for e, k in zip(again, kept, strict=True))
    # only the copies processed are left for Faust to ack; no other ack counts
    assert all(e.message.acked for e in in_flight + [stale])
    assert not any(e.message.acked for e in again)


def test_while_the_broker_does_not_answer_the_group_offset_is_asked_again_only_after_a_while():
    """Each ask blocks the agent for up to 5 s: records of a partition whose committed offset is
    unknown are not each held that long while the broker is away (they commit nothing until
    the offset is known: override 10)."""
    now, answers, asked = [0.0], [None, None, 19], []
    tp = TP("t", 5)

    def group(tp):
        asked.append(tp)
        return answers[len(asked) - 1]

    guard = OffsetGuard(clock=lambda: now[0], broker_committed=group)
    assert [e.message.offset for e in guard.check([event(5, 38, 4), event(5, 39, 4)])[0]] == [
        38, 39] and len(asked) == 1  # fmt: skip
    guard.expected.clear()
    now[0] = OffsetGuard.ASK_AGAIN_S - 0.1
    assert guard.check([event(5, 38, 4)])[1] == {} and len(asked) == 1
    guard.expected.clear()
    now[0] = OffsetGuard.ASK_AGAIN_S
    assert guard.check([event(5, 38, 4)])[1] == {} and len(asked) == 2
    guard.expected.clear()
    now[0] = 2 * OffsetGuard.ASK_AGAIN_S
    assert guard.check([event(5, 38, 4)])[1] == {tp: 19} and len(asked) == 3


def test_resuming_the_flow_keeps_the_records_queued_while_faust_sought_the_committed_offsets():
    """Faust resumes the stream partitions, seeks them to their committed offsets and then
    resumes the flow; mode's resume cleared the stream queues, dropping the first records after
    the committed offsets that were fetched meanwhile (second runs: seen by the guard as jumps
    or 10 s stalls). The app's flow control keeps them; a revocation still clears the queues."""
    from mode.utils.queues import FlowControlQueue

    from streams.app import app

    assert isinstance(app.flow_control, FlowControl)

    async def assignment() -> None:
        flow = FlowControl()
        queue = FlowControlQueue(flow_control=flow, clear_on_resume=True)
        flow.resume()  # for the recovery
        await queue.put("record at the committed offset, fetched during the seek")
        flow.resume()  # after the seek (Recovery.on_recovery_completed)
        assert queue.qsize() == 1
        flow.suspend()  # a revocation (App.on_partitions_revoked)
        flow.clear()
        assert queue.qsize() == 0

    asyncio.run(assignment())


def test_a_commit_held_at_an_offset_retention_deleted_starts_at_the_log_start():
    """The committed offset's record is gone (a worker down longer than the retention): the
    commit is not held for good nor sought back to a missing offset; it starts at the log
    start, and a hole after that is still sought back."""
    tp = TP("purchases", 1)
    c = gapless_consumer({tp: 100})
    c.offset_guard.log_start = lambda tp: 150
    acked(c, tp, range(150, 160))
    assert c._new_offset(tp) is None
    guard = c.offset_guard
    assert guard.held_at(tp, c.commit_base(tp), c.first_acked(tp)) is None
    assert guard.held_at(tp, c.commit_base(tp), c.first_acked(tp)) is None  # not sought
    assert c.commit_base(tp) == 150 and c._new_offset(tp) == 160
    c._committed_offset[tp] = 160  # Faust's, once committed
    acked(c, tp, range(165, 170))  # 160-164 never came
    assert guard.held_at(tp, c.commit_base(tp), c.first_acked(tp)) is None
    assert guard.held_at(tp, c.commit_base(tp), c.first_acked(tp)) == 160


def test_a_jump_over_transaction_markers_is_admitted_without_seeking_back():
    """Chain transfers are written in transactions: each commit's marker takes an offset
    (``make run``: every partition "jumped from offset 2 to 3", sought back, then held its
    records for the guard's whole patience, 10 s per transaction). The broker is asked for the
    first record at or after the expected offset: if it is the one that came, no record was
    skipped. A purchase partition (gapless) is never asked: a gap there is records skipped."""
    asked: list[tuple[TP, int]] = []

    def next_record(tp, offset):
        asked.append((tp, offset))
        return {2: 3, 5: 7}.get(offset)

    guard = OffsetGuard(clock=lambda: 0.0, committed_of=lambda tp: 0,
                        gapless={"purchases"}.__contains__, next_record=next_record)
    chain = [event(1, o, 4, "chain") for o in (0, 1, 3, 4)]  # marker at 2
    kept, seek = guard.check(chain)
    assert [e.message.offset for e in kept] == [0, 1, 3, 4] and seek == {}
    assert asked == [(TP("chain", 1), 2)]
    kept, seek = guard.check([event(1, 8, 4, "chain")])  # 7 holds a record the fetch skipped
    assert kept == [] and seek == {TP("chain", 1): 5}  # sought back to the expected offset
    assert asked[-1] == (TP("chain", 1), 5)
    kept, seek = guard.check([event(2, 0, 4, "purchases"), event(2, 2, 4, "purchases")])
    assert [e.message.offset for e in kept] == [0] and seek == {TP("purchases", 2): 1}
    assert all(tp.topic == "chain" for tp, _ in asked)


def test_a_transaction_marker_at_the_end_of_a_partition_is_no_record_waiting():
    """``make run``: after the chain listener's last transaction every chain-transfers
    partition was "stalled at offset N with records waiting" and sought back every time: the
    offset before the highwater was the transaction's marker. A purchases partition (gapless)
    one record short of its highwater is still a stall."""
    guard = OffsetGuard(clock=lambda: 0.0, committed_of=lambda tp: 5,
                        gapless={"purchases"}.__contains__)
    chain, purchases = TP("chain", 1), TP("purchases", 1)
    assert [guard.stalled(chain, highwater=6) for _ in range(3)] == [None, None, None]
    assert [guard.stalled(purchases, highwater=6) for _ in range(2)] == [None, 5]
    assert [guard.stalled(chain, highwater=7) for _ in range(2)] == [None, 5]


def drain_consumer() -> Consumer:
    """A ``Consumer`` with only what ``wait_first`` uses (mode's events and loop)."""
    from mode.utils.locks import Event

    consumer = Consumer.__new__(Consumer)
    consumer._stopped, consumer._crashed, consumer._loop = Event(), Event(), None
    return consumer


def test_a_record_whose_delivery_completes_at_once_makes_no_task(monkeypatch) -> None:
    consumer, suspend, ran = drain_consumer(), asyncio.Event(), []

    async def callback() -> str:
        ran.append(asyncio.current_task())
        return "queued"

    async def drain():
        def no_task(*args, **kwargs):
            raise AssertionError("a task was made")

        monkeypatch.setattr(asyncio, "ensure_future", no_task)
        waited = suspend.wait()
        results = await consumer.wait_first(callback(), waited)
        assert waited.cr_frame is None  # closed, never awaited: no warning
        return results, asyncio.current_task()

    (winners, results, stopped), task = asyncio.run(drain())
    assert results == ["queued"] and len(winners) == 1 and not stopped
    assert ran == [task]  # its one step, run in the drain's task


def test_a_delivery_that_waits_completes_through_modes_wait_first() -> None:
    consumer, suspend, room = drain_consumer(), asyncio.Event(), asyncio.Event()
    steps = []

    async def callback() -> str:
        steps.append("first")
        await room.wait()  # the queue is full
        steps.append("rest")
        return "queued"

    async def drain():
        asyncio.get_running_loop().call_later(0.01, room.set)
        return await consumer.wait_first(callback(), suspend.wait())

    _, results, stopped = asyncio.run(drain())
    assert results == ["queued"] and not stopped and steps == ["first", "rest"]


def test_a_waiting_delivery_is_cancelled_when_the_flow_is_suspended_first() -> None:
    consumer, suspend, room = drain_consumer(), asyncio.Event(), asyncio.Event()
    cancelled = asyncio.Event()

    async def callback() -> None:
        try:
            await room.wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def drain():
        asyncio.get_running_loop().call_later(0.01, suspend.set)
        results = await consumer.wait_first(callback(), suspend.wait())
        async with asyncio.timeout(2.0):  # the cancellation is delivered, else TimeoutError
            await cancelled.wait()
        return results

    winners, results, _ = asyncio.run(drain())
    assert results == [True] and cancelled.is_set()


def test_a_delivery_that_raises_at_once_raises_from_wait_first() -> None:
    consumer, suspend = drain_consumer(), asyncio.Event()

    async def callback() -> None:
        raise ValueError("bad record")

    async def drain() -> None:
        await consumer.wait_first(callback(), suspend.wait())

    with pytest.raises(ValueError, match="bad record"):
        asyncio.run(drain())


class _Reader:
    """What ``ConsumerThread`` and ``Fetcher`` call of a ``PartitionReader`` (override 14)."""

    def __init__(self) -> None:
        self.at: dict = {}
        self.highwaters: dict = {}
        self.fetched_at: dict = {}

    def placed(self) -> dict:
        return dict(self.at)

    def place(self, tp, offset: int) -> None:
        self.at[TP(tp.topic, tp.partition)] = offset

    def drop(self, tps) -> None:
        for tp in list(tps):
            self.at.pop(TP(tp.topic, tp.partition), None)


def test_the_reader_follows_aiokafkas_assignment_and_positions() -> None:
    from aiokafka.consumer.subscription_state import Assignment
    from aiokafka.structs import TopicPartition

    async def scenario() -> None:
        p0, p1 = TopicPartition("purchases", 0), TopicPartition("purchases", 1)
        first = Assignment({p0, p1})
        first.state_value(p0).seek(5)  # p1: no position yet (a reset under way)
        subscription = SimpleNamespace(assignment=first)
        consumer = SimpleNamespace(_subscription=SimpleNamespace(subscription=subscription))
        thread, reader = ConsumerThread.__new__(ConsumerThread), _Reader()

        thread._sync_reader(reader, consumer)
        assert reader.at == {TP("purchases", 0): 5}  # p1 waits for its position

        first.state_value(p1).seek(7)
        reader.at[TP("purchases", 0)] = 9  # read on since: a later look leaves it be
        reader.highwaters[TP("purchases", 1)] = 12
        thread._reader_marks_at = 0.0
        thread._sync_reader(reader, consumer)
        assert reader.at == {TP("purchases", 0): 9, TP("purchases", 1): 7}
        assert first.state_value(p1).highwater == 12  # aiokafka's highwater, as its fetcher sets

        second = Assignment({p1})  # a rebalance: afresh from the new positions
        second.state_value(p1).seek(3)
        subscription.assignment = second
        thread._sync_reader(reader, consumer)
        assert reader.at == {TP("purchases", 1): 3}

        subscription.assignment = None  # revoked: nothing read
        thread._sync_reader(reader, consumer)
        assert reader.at == {}

    asyncio.run(scenario())


def test_the_reader_reads_only_the_partitions_faust_takes() -> None:
    """A partition Faust takes no records of (a table's own changelog after recovery) is not
    read: it is dropped, and placed again at aiokafka's position once Faust takes it again."""
    from aiokafka.consumer.subscription_state import Assignment
    from aiokafka.structs import TopicPartition

    async def scenario() -> None:
        stream = TopicPartition("purchases", 0)
        changelog = TopicPartition("app-wallet_to_state-changelog", 0)
        assignment = Assignment({stream, changelog})
        assignment.state_value(stream).seek(5)
        assignment.state_value(changelog).seek(40)
        consumer = SimpleNamespace(
            _subscription=SimpleNamespace(subscription=SimpleNamespace(assignment=assignment)))
        thread, reader = ConsumerThread.__new__(ConsumerThread), _Reader()

        thread._sync_reader(reader, consumer, {stream, changelog})  # recovering: both read
        assert reader.at == {TP("purchases", 0): 5, TP(changelog.topic, 0): 40}

        assignment.state_value(changelog).seek(57)  # recovery took records up to 56
        thread._sync_reader(reader, consumer, {TP("purchases", 0)})  # Faust's TP: the same
        assert reader.at == {TP("purchases", 0): 5}  # the changelog is not read

        thread._sync_reader(reader, consumer, {stream, changelog})  # taken again
        assert reader.at == {TP("purchases", 0): 5, TP(changelog.topic, 0): 57}

    asyncio.run(scenario())


def test_a_partition_revoked_under_a_taken_record_has_no_highwater_and_no_crash() -> None:
    """Faust's ``getmany`` asks the highwater of each record it yields; aiokafka asserts on a
    partition it has revoked meanwhile (on its own thread): unknown (None) instead."""
    assigned = {TP("purchases", 0)}
    aiokafka_consumer = SimpleNamespace(
        _subscription=SimpleNamespace(is_assigned=lambda tp: tp in assigned),
        highwater=lambda tp: 42)
    thread = ConsumerThread.__new__(ConsumerThread)
    thread.consumer = SimpleNamespace(in_transaction=False)
    thread._ensure_consumer = lambda: aiokafka_consumer

    assert thread.highwater(TP("purchases", 0)) == 42
    assigned.clear()  # revoked while Faust still yields the partition's taken records
    assert thread.highwater(TP("purchases", 0)) is None


def test_the_fetcher_sends_no_fetch_and_tells_the_reader_each_seek_and_reset() -> None:
    from aiokafka.structs import TopicPartition

    tp = TopicPartition("purchases", 2)
    sought: list = []
    fetcher = Fetcher.__new__(Fetcher)
    fetcher._subscriptions = SimpleNamespace(seek=lambda tp, offset: sought.append((tp, offset)))
    fetcher._records, fetcher._wait_consume_future = {}, None
    fetcher._notify = lambda future: None
    fetcher.reader = reader = _Reader()

    fetcher.seek_to(tp, 40)
    assert sought == [(tp, 40)] and reader.at == {TP("purchases", 2): 40}

    async def reset() -> None:
        from aiokafka.consumer.subscription_state import Assignment

        fetcher._subscriptions.subscription = SimpleNamespace(assignment=Assignment({tp}))
        waiting = fetcher.request_offset_reset([tp], "earliest")  # placed again once aiokafka
        assert reader.at == {}  # has the position (``ConsumerThread._sync_reader``)
        waiting.cancel()

    asyncio.run(reset())

    requests = [(1, "fetch request")]
    base = aiokafka_fetcher.Fetcher._get_actions_per_node
    try:
        aiokafka_fetcher.Fetcher._get_actions_per_node = (
            lambda self, assignment: (requests, {1: [tp]}, 0.2, False, []))
        assert fetcher._get_actions_per_node(None) == ([], {1: [tp]}, 0.2, False, [])
        fetcher.reader = None  # without a reader: aiokafka's own fetch requests
        assert fetcher._get_actions_per_node(None)[0] == requests
    finally:
        aiokafka_fetcher.Fetcher._get_actions_per_node = base
