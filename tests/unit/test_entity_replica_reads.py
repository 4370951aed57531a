"""The scorer reads each purchase once: the entity replica keeps what it read of a record it
applied (``read_purchase``: its order and crowd read) for the scorer to take (``take_read``). The
replica runs here on a fake consumer, driven step by step on the test's thread (``step`` is
what its own thread runs); the scorer's ``_features`` reads from it through ``ctx``."""

from __future__ import annotations

import copy
import threading
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from confluent_kafka import TopicPartition

from infra.settings import get_settings
from processors.crowd import crowd_read, read_purchase
from processors.features import FeatureEngine
from processors.marks import MarkStore
from processors.records import read_order
from processors.timeutil import to_ms
from schemas.codec import DecodeError
from sinks.testing import wait_until
from streams import entity_replica, scoring
from streams.context import ctx
from streams.entity_replica import READS_KEPT, EntityReplica
from tests.unit.test_processors_crowd import T0, purchase

pytestmark = pytest.mark.unit

PARTITIONS = (0, 1, 2)
POISON = b"\x00not avro"


class Message:
    def __init__(self, partition: int, offset: int, value):
        self._partition, self._offset, self._value = partition, offset, value

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def error(self) -> None:
        return None

    def value(self):
        return self._value


class FakeConsumer:
    """What the replica asks of its consumer; ``fetched`` is what ``consume`` returns next."""

    def __init__(self, conf: dict):
        self.fetched: list[Message] = []
        self.ends: dict[int, int] = {}  # partition -> past every record handed out or waiting
        self.paused: set[int] = set()
        self.seeks: list[tuple[int, int]] = []  # (partition, offset), in order

    def list_topics(self, topic: str, timeout: float):
        meta = SimpleNamespace(error=None, partitions=dict.fromkeys(PARTITIONS))
        return SimpleNamespace(topics={topic: meta})

    def incremental_assign(self, partitions) -> None:
        pass

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append((tp.partition, tp.offset))

    def consume(self, n: int, timeout: float) -> list[Message]:
        self._written()
        out, self.fetched = self.fetched[:n], self.fetched[n:]
        return out

    def offsets_for_times(self, partitions, timeout: float) -> list[TopicPartition]:
        """Where each partition ends (the replica asks with ``OFFSET_END``)."""
        self._written()
        return [TopicPartition(tp.topic, tp.partition, self.ends.get(tp.partition, 0))
                for tp in partitions]

    def _written(self) -> None:
        for m in self.fetched:
            self.ends[m.partition()] = max(self.ends.get(m.partition(), 0), m.offset() + 1)

    def pause(self, partitions) -> None:
        self.paused |= {tp.partition for tp in partitions}

    def resume(self, partitions) -> None:
        self.paused -= {tp.partition for tp in partitions}

    def close(self) -> None:
        pass


class Codec:
    """Decodes a fetched value (the purchase itself, copied as a decoder would make it)."""

    def decode(self, value):
        if value == POISON:
            raise DecodeError("not avro")
        return copy.deepcopy(value)


@pytest.fixture
def replica(monkeypatch) -> EntityReplica:
    monkeypatch.setattr(entity_replica, "Consumer", FakeConsumer)
    return new_replica()


def new_replica() -> EntityReplica:
    """A replica on a ``FakeConsumer`` (patched in by the ``replica`` fixture), which also
    answers where the partitions end (one fake broker for both clients)."""
    replica = EntityReplica(get_settings(), Codec())  # type: ignore[arg-type]
    replica.ends_reader = replica.consumer
    return replica.open()


def purchases(n: int, start: int = 0) -> list[dict]:
    """Purchases ``start`` .. ``start + n - 1``, 30 s apart."""
    return [purchase(k, T0 + timedelta(seconds=30 * k)) for k in range(start, start + n)]


def records(partition: int, items: list[dict], first: int = 0) -> list[tuple]:
    return [(partition, first + i, to_ms(p["occurred_at"]) or 0, p) for i, p in enumerate(items)]


def announce(replica: EntityReplica, batch: list[tuple], owned=None) -> None:
    """What ``scoring.wait_for_entities`` announces for a batch (without waiting)."""
    offsets: dict[int, int] = {}
    earliest: dict[int, int] = {}
    for partition, offset, ts, _ in batch:
        offsets[partition] = max(offsets.get(partition, -1), offset)
        earliest[partition] = min(earliest.get(partition, ts), ts)
    replica.announce(offsets, earliest, max(ts for *_, ts, _ in batch), owned)


def read(p: dict):
    order = read_order(p)
    return order, crowd_read(p, order.unit)


def test_a_record_offered_and_applied_is_read_once_and_taken_once(replica):
    batch = records(0, purchases(5))
    announce(replica, batch, {0: None})
    assert replica.offer(batch) == 5
    with replica.lock:
        taken = [replica.take_read(0, offset, p["purchase_id"]) for _, offset, _, p in batch]
        assert taken == [read(p) for *_, p in batch]
        assert replica.take_read(0, 2, batch[2][3]["purchase_id"]) is None  # taken already
    assert not replica.reads[0]


def test_a_record_the_replica_applied_on_its_own_fetch_is_taken_by_the_scorer(replica):
    """A backlog: the replica fetched and applied the records before the scorer's batch (its
    own copies, decoded from the same bytes); the scorer takes the read of its own copy."""
    first, later = records(1, purchases(4)), records(1, purchases(4, start=4), first=4)
    announce(replica, first, {1: None})
    replica.offer(first)
    replica.consumer.fetched = [Message(1, o, p) for _, o, _, p in later]
    replica.step()  # within the lead: applied on the replica's thread, before any batch
    assert replica.next_offset[1] == 8
    announce(replica, later, {1: None})
    with replica.lock:
        for _, offset, _, p in later:
            assert replica.take_read(1, offset, p["purchase_id"]) == read(p)


def test_a_record_the_replica_applied_first_reaches_the_scorer_decoded_until_taken(replica):
    """Live traffic: the replica's fetch is quicker than Faust's, so it has decoded and applied
    the records before the scorer's batch. The scorer gets the replica's purchase (``decoded``,
    the same object: not decoded twice) as long as the read is kept, then decodes its own."""
    items = purchases(4)
    announce(replica, records(0, items[:1]), {0: None})
    replica.consumer.fetched = [Message(0, o, p) for o, p in enumerate(items)]
    replica.step()
    assert replica.applied == 4 and not replica.held[0]
    positions = [(0, o) for o in range(4)] + [(0, 4), (1, 0)]
    handed = replica.decoded(positions)
    assert handed[:4] == items and handed[4:] == [None, None]  # never fetched
    assert all(mine is kept for mine, (_, _, kept) in zip(handed, replica.reads[0], strict=False))
    with replica.lock:
        assert replica.take_read(0, 1, items[1]["purchase_id"]) == read(items[1])
    assert replica.decoded(positions[:4]) == [None, None, items[2], items[3]]  # 0 passed, 1 taken
    # a batch up to offset 3 scored, the next one announced: the reads passed are dropped
    announce(replica, records(0, items[3:], first=3), {0: None})
    announce(replica, records(0, purchases(1, start=4), first=4), {0: None})
    assert replica.decoded(positions[:4]) == [None] * 4


def test_records_not_applied_are_read_by_the_scorer(replica):
    """Nothing is kept for a record the replica could not decode, one the store refused (an
    unknown currency), one not applied yet (after a gap) or one not the scorer's (a
    different purchase at that position)."""
    items = purchases(4)
    items[2] = {**items[2], "currency": "XXX"}
    replica.consumer.fetched = [
        Message(0, 0, items[0]),
        Message(0, 1, POISON),
        Message(0, 2, items[2]),
        Message(0, 3, items[3]),
    ]
    announce(replica, records(0, items), {0: None})
    replica.step()
    assert (replica.applied, replica.rejected) == (2, 1)
    with replica.lock:
        assert replica.take_read(0, 0, "not the record at offset 0") is None
        assert replica.take_read(0, 1, "p1") is None
        assert replica.take_read(0, 2, "p2") is None
        assert replica.take_read(0, 3, "p3") == read(items[3])
    after_gap = records(0, purchases(2, start=10), first=10)
    announce(replica, after_gap, {0: None})
    assert replica.offer(after_gap) == 0
    with replica.lock:
        assert replica.take_read(0, 10, "p10") is None
    assert not replica.reads[0]


def test_reads_are_kept_for_the_partitions_the_worker_scores_only(replica):
    """The replica applies every partition; it keeps reads of those the worker scores, and
    drops a partition's when a rebalance takes it away."""
    mine, theirs = records(0, purchases(3)), records(2, purchases(3, start=3))
    announce(replica, mine, {0: None})
    replica.consumer.fetched = [Message(2, o, p) for _, o, _, p in theirs]
    replica.step()
    replica.offer(mine)
    assert replica.applied == 6
    assert set(replica.reads) == {0}
    assert [offset for offset, *_ in replica.reads[0]] == [0, 1, 2]
    announce(replica, records(2, purchases(1, start=6), first=3), {2: None})  # a rebalance
    assert set(replica.reads) == {2}
    assert not replica.reads[2]


def test_reads_stay_bounded_when_the_scorer_never_takes_them(replica):
    n = 2 * READS_KEPT + 10
    items = purchases(n)
    announce(replica, records(0, items[:1]), {0: None})
    replica.consumer.fetched = [Message(0, o, p) for o, p in enumerate(items)]
    replica.horizon_ms = to_ms(items[-1]["occurred_at"])  # as a batch far ahead would allow
    while replica.step():
        pass
    assert replica.applied == n
    assert len(replica.reads[0]) == READS_KEPT
    # Each batch announced drops the reads at or before the last one scored, taken or not.
    announce(replica, records(0, items[n - 1 :], first=n - 1), {0: None})
    assert len(replica.reads[0]) == READS_KEPT - 1  # the first batch's record
    announce(replica, records(0, items[n - 1 :], first=n - 1), {0: None})
    assert not replica.reads[0]


def test_the_scorers_features_are_those_it_computes_from_its_own_read(replica, monkeypatch):
    """``scoring._features`` over simulated batches: the same rows, clusters and wallet
    states whether it takes the replica's reads or reads every purchase itself (the replica
    keeps nothing), the rows equal to replay's (``FeatureEngine``); with the reads kept,
    each purchase is read once (the replica's ``read_purchase``)."""
    from models.simulator import SimConfig, simulate

    items = [r for k, r in simulate(SimConfig(seed=5, days=1)) if k == "purchase"][:600]
    engine = FeatureEngine()
    replayed = [engine.process_row("purchase", p) for p in items]
    n = len(items)
    shared, calls = run_scorer(replica, items, monkeypatch)
    assert calls == {"read_purchase": n, "read_order": 0, "crowd_read": 0}
    alone_replica = new_replica()
    monkeypatch.setattr(entity_replica, "READS_KEPT", 0)
    alone, calls = run_scorer(alone_replica, items, monkeypatch)
    assert calls == {"read_purchase": n, "read_order": n, "crowd_read": n}
    assert shared == alone
    assert [row for row, _ in shared[0]] == replayed


def test_the_batchs_reads_give_the_features_each_purchases_own_lookups_give(replica, monkeypatch):
    """``scoring.Reads`` built once a batch (as ``score`` does) and passed to every
    ``_features`` call: the same rows, clusters and wallet states as ``_features`` looking
    ``ctx`` up for each purchase, and a redelivery found on the decisions topic is applied to
    its wallet and not scored either way."""
    from models.simulator import SimConfig, simulate

    items = [r for k, r in simulate(SimConfig(seed=6, days=1)) if k == "purchase"][:400]
    redelivered = {items[n]["purchase_id"] for n in (3, 50, 321)}
    each = run_scorer(replica, items, monkeypatch, redelivered=redelivered)[0]
    batch = run_scorer(
        new_replica(), items, monkeypatch, batch_reads=True, redelivered=redelivered
    )[0]
    assert batch == each
    rows = [row for row, _ in batch[0]]
    assert sum(row is None for row in rows) == len(redelivered)
    assert all(any(pid in state for state in batch[1].values()) for pid in redelivered)


def run_scorer(
    replica: EntityReplica,
    items: list[dict],
    monkeypatch,
    batch_reads: bool = False,
    redelivered: frozenset[str] | set[str] = frozenset(),
):
    """Batches of ``items`` (the wallets' partitions, up to 50 records) announced, offered and
    scored as ``scoring.wait_for_entities`` and ``scoring.score`` do, the scorer given copies
    of the replica's purchases for a third of the partitions (what it decoded itself); ((row,
    cluster) per purchase, the wallet states), and how often the reads ran. ``batch_reads``:
    one ``scoring.Reads`` a batch, as ``scoring.score`` passes; ``redelivered``: purchase ids
    the decisions topic holds."""
    calls = {"read_purchase": 0, "read_order": 0, "crowd_read": 0}

    def counted(name, f):
        def call(*args):
            calls[name] += 1
            return f(*args)

        return call

    # the replica reads a purchase with read_purchase, the scorer one it was not given with
    # read_order and (when it scores it) crowd_read
    monkeypatch.setattr(entity_replica, "read_purchase", counted("read_purchase", read_purchase))
    monkeypatch.setattr(scoring, "read_order", counted("read_order", read_order))
    monkeypatch.setattr(scoring, "crowd_read", counted("crowd_read", crowd_read))
    table: dict[str, object] = {}
    monkeypatch.setattr(scoring, "wallet_to_state", table)
    monkeypatch.setitem(vars(ctx), "replica", replica)
    monkeypatch.setitem(vars(ctx), "feature_config", FeatureEngine().config)
    monkeypatch.setitem(vars(ctx), "marks", SimpleNamespace(store=MarkStore()))
    monkeypatch.setitem(
        vars(ctx),
        "redeliveries",
        SimpleNamespace(decided=lambda partition, purchase_id: purchase_id in redelivered),
    )
    next_offset, out = dict.fromkeys(PARTITIONS, 0), []
    for start in range(0, len(items), 50):
        batch = []
        for p in items[start : start + 50]:
            partition = int(p["wallet"], 16) % len(PARTITIONS)
            offset, next_offset[partition] = next_offset[partition], next_offset[partition] + 1
            batch.append((partition, offset, to_ms(p["occurred_at"]) or 0, p))
        announce(replica, batch, dict.fromkeys(PARTITIONS))
        replica.offer(batch)
        touched: scoring.Touched = {}
        with replica.lock:
            reads = scoring.Reads() if batch_reads else None
            for partition, offset, _, p in batch:
                event = SimpleNamespace(message=SimpleNamespace(partition=partition, offset=offset))
                mine = copy.deepcopy(p) if partition == 0 else p
                wallet, row, cluster = scoring._features(event, mine, touched, reads)
                touched[p["wallet"]] = (wallet, event)
                out.append((row, cluster))
        table.update((key, wallet) for key, (wallet, _) in touched.items())
    assert all(not kept for kept in replica.reads.values())  # every read taken
    return (out, {key: repr(wallet) for key, wallet in table.items()}), dict(calls)


class RecordingReplica:
    """What ``scoring.wait_for_entities`` tells the replica (covered at once)."""

    def __init__(self):
        self.calls: list[tuple] = []

    def announce(self, offsets, earliest, latest_ms, owned) -> int:
        self.calls.append(("announce", list(offsets.items()), list(earliest.items()),
                           latest_ms, owned))  # fmt: skip
        return 42  # the batch's fence, handed back to ``covers``

    def offer(self, batch) -> int:
        self.calls.append(("offer", list(batch)))
        return len(batch)

    def covers(self, ts_ms, offsets, fence) -> bool:
        self.calls.append(("covers", ts_ms, list(offsets.items()), fence))
        return True


def test_wait_for_entities_announces_and_offers_what_its_batch_holds(monkeypatch):
    """One pass over the batch gives the records, each partition's last offset and earliest
    event time and the batch's latest one as the per-record tuples and their max/min did
    (partitions interleaved, event times out of order, one at the epoch: ``to_ms`` 0)."""
    import asyncio
    import random
    from datetime import UTC, datetime

    items = purchases(14)
    random.Random(7).shuffle(items)
    items[5] = {**items[5], "occurred_at": datetime(1970, 1, 1, tzinfo=UTC)}
    layout = [(1, 7), (0, 3), (1, 8), (2, 0), (0, 4), (1, 9), (2, 1), (0, 5), (0, 6), (1, 10),
              (2, 2), (2, 3), (0, 7), (1, 11)]  # fmt: skip
    batch = [(SimpleNamespace(message=SimpleNamespace(partition=part, offset=off)), p)
             for (part, off), p in zip(layout, items, strict=True)]  # fmt: skip
    recorded = RecordingReplica()
    monkeypatch.setitem(vars(ctx), "replica", recorded)
    owned = {0: None, 1: 5, 2: None}
    asyncio.run(scoring.wait_for_entities(batch, owned))
    # the reference: the batch's records first, then their per-partition extremes
    expected = [(e.message.partition, e.message.offset, to_ms(p["occurred_at"]) or 0, p)
                for e, p in batch]  # fmt: skip
    offsets: dict[int, int] = {}
    earliest: dict[int, int] = {}
    for partition, offset, ts, _ in expected:
        offsets[partition] = max(offsets.get(partition, -1), offset)
        earliest[partition] = min(earliest.get(partition, ts), ts)
    until = max(ts for _, _, ts, _ in expected)
    assert min(earliest.values()) == 0 < until
    assert recorded.calls == [
        ("announce", list(offsets.items()), list(earliest.items()), until, owned),
        ("offer", expected),
        ("covers", until, list(offsets.items()), 42),
    ]


def test_a_partitions_progress_is_that_of_the_last_record_applied(replica):
    """``_apply_held`` sets a partition's latest event time and next offset once, after
    applying what it may: the same as after each record (an undecodable record counts, with
    no event time; a partition with nothing applied keeps its progress). The reads it keeps
    are those of ``read_order`` converting each event time itself."""
    first, second = purchases(100), purchases(100, start=100)
    replica.consumer.fetched = [
        *(Message(0, i, POISON if i == 10 else p) for i, p in enumerate(first)),
        *(Message(1, i, p) for i, p in enumerate(second)),
    ]
    replica.step()  # held: no horizon announced yet
    assert replica.next_offset == {0: 0, 1: 0, 2: 0}
    held = {p: list(replica.held[p]) for p in PARTITIONS}
    latest_at = to_ms(first[20]["occurred_at"]) or 0
    replica.announce(
        {1: 2, 2: 0}, {1: latest_at, 2: latest_at}, latest_at, dict.fromkeys(PARTITIONS)
    )
    # the reference: each record's progress as it is applied
    horizon, scored = replica.horizon_ms, dict(replica.scored)
    latest, next_offset, applied = dict(replica.latest_ms), dict(replica.next_offset), []
    for partition, records_held in held.items():
        for offset, ts, item in records_held:
            if not (ts <= horizon or offset <= scored.get(partition, -1)):
                break
            latest[partition] = max(latest[partition], ts)
            next_offset[partition] = offset + 1
            applied.append((partition, offset, item))
    replica.offer([])
    assert (replica.latest_ms, replica.next_offset) == (latest, next_offset)
    assert 3 < next_offset[0] < 100 and next_offset[1] == 3 and next_offset[2] == 0
    assert (replica.applied, replica.rejected) == (len(applied) - 1, 0)
    with replica.lock:
        for partition, offset, item in applied:
            want = None if item is None else read(item)
            assert replica.take_read(partition, offset, (item or {}).get("purchase_id")) == want


def test_a_record_held_without_a_positive_event_time_is_converted_again(replica):
    """``_apply_one`` reads with the held event time when positive (``to_ms`` of the
    purchase's), else converts it again: a record that cannot be converted is refused."""
    p = purchases(1)[0]
    assert replica._apply_one(p, to_ms(p["occurred_at"]) or 0) == read(p)
    other = new_replica()
    for ts in (0, -1):
        assert other._apply_one(dict(p, purchase_id=f"p-{ts}"), ts) == read(
            dict(p, purchase_id=f"p-{ts}"))  # fmt: skip
    naive = dict(p, purchase_id="naive", occurred_at=p["occurred_at"].replace(tzinfo=None))
    assert other._apply_one(naive, 0) is None
    assert (other.applied, other.rejected) == (2, 1)


def test_records_fed_by_the_reader_pause_the_partition_on_the_replica_s_own_consumer(replica):
    """The worker's reader hands over what it fetched of the worker's partitions (``feed``):
    fed records that follow on from what the replica has are applied once, and the replica's
    own consumer stops fetching that partition; its own copies fetched before are skipped."""
    items = purchases(6)
    announce(replica, records(2, items[:1]), {2: None})
    replica.consumer.fetched = [Message(2, o, p) for o, p in enumerate(items[:2])]
    replica.step()  # its own fetch: offsets 0 and 1
    assert replica.next_offset[2] == 2 and 2 not in replica.consumer.paused
    replica.feed([Message(2, o, p) for o, p in enumerate(items[:4])])  # 0, 1 already there
    replica.consumer.fetched = [Message(2, o, p) for o, p in enumerate(items) if o >= 2]
    replica.step()  # fed 2 and 3 first, then its own 2..5: 4 and 5 follow on
    assert replica.fed == {2} and replica.consumer.paused == {2}
    assert replica.applied == 6 and replica.next_offset[2] == 6
    assert replica.decoded([(2, o) for o in range(6)]) == items


def test_a_fed_partition_whose_feed_stops_or_jumps_is_fetched_again_where_it_was(replica):
    """``unfeed`` (the reader dropped, placed anew or paused the partition) and a fed record
    after a gap both give the partition back to the replica's own consumer, resumed and
    sought to the offset the replica takes next."""
    items = purchases(8)
    announce(replica, records(0, items[:1]), {0: None, 1: None})
    replica.feed([Message(0, o, p) for o, p in enumerate(items[:3])]
                 + [Message(1, o, p) for o, p in enumerate(items[:2])])
    replica.step()
    assert replica.fed == {0, 1} and replica.consumer.paused == {0, 1}
    replica.unfeed({0})
    replica.step()
    assert replica.fed == {1} and replica.consumer.paused == {1}
    assert replica.consumer.seeks == [(0, 3)]
    replica.feed([Message(1, 5, items[5])])  # 2..4 never fed: the reader jumped
    replica.step()
    assert not replica.fed and not replica.consumer.paused
    assert replica.consumer.seeks == [(0, 3), (1, 2)] and replica.next_offset[1] == 2


def test_records_fed_ahead_of_the_replica_are_left_to_its_own_consumer(replica):
    """A replica still reading a partition's history (its reader placed at the group's
    committed offset, further on) takes nothing fed after a gap and keeps fetching; once its
    own fetch reaches the fed records, the next one fed follows on and the partition is fed."""
    items = purchases(6)
    announce(replica, records(2, items[:1]), {2: None})
    replica.feed([Message(2, o, p) for o, p in enumerate(items) if o >= 3])
    replica.step()
    assert not replica.fed and replica.next_offset[2] == 0 and replica.applied == 0
    replica.consumer.fetched = [Message(2, o, p) for o, p in enumerate(items[:5])]
    replica.step()
    replica.feed([Message(2, 5, items[5])])
    replica.step()
    assert replica.fed == {2} and replica.next_offset[2] == 6 and replica.applied == 6


def test_a_batch_waiting_for_a_record_is_woken_by_its_feed(replica, monkeypatch):
    """Purchases stamped when sent (a live shop's) leave a partition covered only once its
    next record is applied: a batch waiting in ``wait_covers`` for a record the reader then
    fetches is covered as the record is fed, not when the replica's idle thread next wakes."""
    monkeypatch.setattr(entity_replica, "IDLE_WAIT_S", 30.0)
    items, later = purchases(3), purchases(1, start=10)  # ``later``: 5 min after items[2]
    announce(replica, records(0, items[:1]), dict.fromkeys(PARTITIONS))
    replica.feed([Message(0, o, p) for o, p in enumerate(items[:2])]
                 + [Message(p, 0, later[0]) for p in (1, 2)])
    replica.step()
    assert replica.fed == set(PARTITIONS) and replica.next_offset == {0: 2, 1: 1, 2: 1}
    replica._thread.start()  # every partition fed, nothing to fetch: it waits (30 s here)
    covered: list[bool] = []
    until = to_ms(items[2]["occurred_at"]) or 0
    waiter = threading.Thread(target=lambda: covered.append(
        replica.wait_covers(until, {0: 2}, timeout=10.0)))
    try:
        waiter.start()
        # the batch waits, and so does the replica's thread (idle, on its intake)
        wait_until(lambda: replica._waiting == 1 and replica._intake_cv._waiters, 10.0,
                   "the batch and the replica's thread waiting")  # type: ignore[attr-defined]
        assert not covered
        started = time.monotonic()
        replica.feed([Message(0, 2, items[2])])
        waiter.join(10.0)
        assert covered == [True] and time.monotonic() - started < 2.0
        assert replica.next_offset[0] == 3
    finally:
        replica.stop()
        waiter.join(10.0)


def test_the_readers_ends_reported_after_a_batch_was_fed_cover_it_without_an_ask(replica):
    """With one broker leading every partition, the worker's reader reports where the
    partitions it fetches end (``ended``, its fetch responses' high watermarks) after feeding
    what it fetched before. A batch whose records were all fed before a report is covered by
    it, without asking the broker; one with a record fed after the report, a partition the
    report leaves out, or partitions led by several brokers still need the broker's answer."""
    items = purchases(4)
    ts = [to_ms(p["occurred_at"]) or 0 for p in items]
    asked_itself: list[int] = []
    replica._ask_ends = lambda: asked_itself.append(replica.asked) or None  # type: ignore
    replica.one_leader = True
    owned = dict.fromkeys(PARTITIONS)
    replica.feed([Message(0, o, p) for o, p in enumerate(items[:2])])
    replica.ended({0: 2, 1: 0, 2: 0})  # after the feed: both records were fetched before it
    first = replica.announce({0: 1}, {0: ts[0]}, ts[1], owned)
    replica.step()  # takes the feed; no ask: the report says where every partition ends
    assert asked_itself == [] and replica.next_offset[0] == 2
    assert replica.covers(ts[1], {0: 1}, first)
    replica.feed([Message(0, 2, items[2])])  # fed after the last report
    second = replica.announce({0: 2}, {0: ts[2]}, ts[2], owned)
    replica.step()
    assert asked_itself == [second]  # asked (and got no answer here)
    assert not replica.covers(ts[2], {0: 2}, second)
    replica.ended({0: 3, 1: 0})  # partition 2 left out (the reader has it paused)
    replica.step()
    assert asked_itself == [second, second] and not replica.covers(ts[2], {0: 2}, second)
    replica.ended({0: 3, 1: 0, 2: 0})
    assert replica.covers(ts[2], {0: 2}, second)
    replica.one_leader = False  # partitions led by several brokers: the report is not used
    assert not replica.covers(ts[2], {0: 2}, second)


def test_one_leader_is_asked_again_and_counts_only_one_known_broker(replica, monkeypatch):
    """The reader's ends serve only while one broker leads every partition: asked at open and
    again every ``LEADERS_EVERY_S`` on the replica's thread (leadership may move); several
    leaders, a partition without one (-1) or no answer count as not one."""
    def meta(*leaders):
        parts = {p: SimpleNamespace(leader=leader)
                 for p, leader in zip(PARTITIONS, leaders, strict=True)}
        return SimpleNamespace(error=None, partitions=parts)

    assert entity_replica.one_leader(meta(1, 1, 1))
    assert not entity_replica.one_leader(meta(1, 2, 1))
    assert not entity_replica.one_leader(meta(-1, -1, -1))
    answers = [meta(1, 2, 1)]
    monkeypatch.setattr(replica.consumer, "list_topics", lambda topic, timeout: SimpleNamespace(
        topics={topic: answers[0]}), raising=False)
    replica.one_leader = True
    replica._check_leaders()  # asked less than LEADERS_EVERY_S ago: not asked
    assert replica.one_leader
    replica._leaders_at -= entity_replica.LEADERS_EVERY_S
    replica._check_leaders()
    assert not replica.one_leader
    answers[0] = meta(3, 3, 3)
    replica._leaders_at -= entity_replica.LEADERS_EVERY_S
    replica._check_leaders()
    assert replica.one_leader
