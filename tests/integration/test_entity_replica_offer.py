"""The scorer hands its own decoded purchases to the entity replica (``EntityReplica.offer``),
so a batch does not wait for the replica's own fetch of them. Whichever copy of a record comes
first, the scorer's or the replica consumer's, each offset is applied once and in order, and a
record after a gap waits for the consumer."""

from __future__ import annotations

import time
from contextlib import contextmanager

import pytest
from confluent_kafka import TopicPartition

from infra import topics
from infra.chaos_report import read_all_placed
from processors.timeutil import to_ms
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from sinks.testing import wait_until
from streams.entity_replica import EntityReplica
from tests.integration.test_worker_restart import simulated_purchases
from tests.support.kafka import produce

pytestmark = pytest.mark.integration

@contextmanager
def replica_at_the_ends(settings):
    """A replica, driven step by step on this thread, at the ends of 80 simulated purchases;
    yields (codec, replica, the 40 next purchases encoded, to be written by the test)."""
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.PURCHASES)
    encoded = [(p["wallet"], codec.encode(p)) for p in simulated_purchases(120)]
    produce(settings, topics.PURCHASES, encoded[:80])
    replica = EntityReplica(settings, codec).open()
    try:
        step_to_the_ends(replica)
        yield codec, replica, encoded[80:]
    finally:
        replica.stop()



def step_to_the_ends(replica: EntityReplica, timeout: float = 30.0) -> None:
    """Step a replica driven on this thread until every partition is fetched to its end."""
    deadline = time.monotonic() + timeout
    while not all(replica.caught_up.values()):
        assert time.monotonic() < deadline, replica.caught_up
        replica.step()

def burst_batch(settings, codec, replica):
    """The records written after the replica's ends, as a batch the scorer would take: the
    partition of the newest one, its new records (partition, offset, event time, purchase),
    the last offset and latest event time, and the other partitions' last new offsets."""
    later = sorted((p, o, to_ms((d := codec.decode(v))["occurred_at"]), d) for p, o, v in
                   read_all_placed(settings, topics.PURCHASES, 30)
                   if o >= replica._expected(p))  # fmt: skip
    partition = max(later, key=lambda r: r[2])[0]  # the batch: its partition's new records
    batch = [r for r in later if r[0] == partition]
    others = {p: o for p, o, _, _ in later if p != partition}
    assert others, "every new record landed on one partition"
    return partition, batch, batch[-1][1], max(ts for _, _, ts, _ in batch), others


def step_until_covered(replica, latest: int, offsets: dict, fence: int, others: dict) -> None:
    """Step the replica until the fenced batch is covered (30 s at most); by then the other
    partitions' new records are applied."""
    deadline = time.monotonic() + 30
    while not replica.covers(latest, offsets, fence):
        assert time.monotonic() < deadline
        replica.step()
    assert all(replica.next_offset[p] > o for p, o in others.items()), (
        replica.next_offset, others)



def test_offered_records_are_applied_once_in_order_whoever_brings_them_first(settings):
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.PURCHASES)
    purchases = simulated_purchases(80)
    produce(settings, topics.PURCHASES, [(p["wallet"], codec.encode(p)) for p in purchases])
    records = sorted((p, o, to_ms((purchase := codec.decode(v))["occurred_at"]) or 0, purchase)
                     for p, o, v in read_all_placed(settings, topics.PURCHASES, 30))
    assert len(records) == len(purchases)
    by_partition: dict[int, list] = {}
    for record in records:
        by_partition.setdefault(record[0], []).append(record)
    ends = {p: rs[-1][1] for p, rs in by_partition.items()}
    times = [ts for _, _, ts, _ in records]
    # Driven step by step on this thread (``start`` would run the same steps in its own).
    replica = EntityReplica(settings, codec).open()
    try:
        replica.announce(ends, {p: min(times) for p in ends}, max(times))
        first_halves = [r for rs in by_partition.values() for r in rs[:(len(rs) + 1) // 2]]
        partition, first = min(by_partition.items())
        # After a gap nothing is taken: the partition's first record has not come yet.
        assert replica.offer(first[1:]) == 0
        assert replica.offer(first_halves) == len(first_halves)
        # ... and applied on the caller's thread, at once:
        assert replica.applied == len(first_halves)
        assert all(replica.next_offset[p] == rs[(len(rs) + 1) // 2 - 1][1] + 1
                   for p, rs in by_partition.items())
        # Offered again (a stale copy, or after a seek back): nothing is taken twice.
        assert replica.offer(first_halves) == 0

        # The replica's consumer reads every partition from its start: the copies of what
        # was offered are skipped, the rest decoded and applied in order.
        deadline = time.monotonic() + 30
        while not (all(replica.caught_up.values()) and replica.covers(max(times) + 1, ends)):
            assert time.monotonic() < deadline, (replica.next_offset, ends)
            replica.step()
        assert replica.applied == len(purchases), (replica.applied, len(purchases))
        assert replica.rejected == 0
        assert replica.store.sizes()["seen"] == len(purchases)
        assert all(replica.store.has_seen(p["purchase_id"]) for p in purchases)
        assert {p: replica.next_offset[p] for p in ends} == {p: o + 1 for p, o in ends.items()}
        assert replica.offer(records) == 0
    finally:
        replica.stop()


def test_records_the_replica_fetched_first_reach_the_scorer_decoded(settings):
    """In a backlog the replica's consumer reads ahead of the scorer: the scorer takes the
    replica's decoded copies (``decoded``) instead of decoding its own; a record not held, or
    one the replica could not decode, is left to the scorer (None)."""
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.PURCHASES)
    purchases = simulated_purchases(40)
    produce(settings, topics.PURCHASES, [(p["wallet"], codec.encode(p)) for p in purchases])
    produce(settings, topics.PURCHASES, [(b"poison", b"\x00not avro")])
    placed = read_all_placed(settings, topics.PURCHASES, 30)
    assert len(placed) == len(purchases) + 1
    replica = EntityReplica(settings, codec).open()  # no batch announced: nothing is applied
    try:
        step_to_the_ends(replica)
        assert replica.applied == 0
        positions = [(p, o) for p, o, _ in placed] + [(0, 10_000)]
        held = replica.decoded(positions)
        by_value = {v: (p, o) for p, o, v in placed}
        poison = by_value[b"\x00not avro"]
        for (position, value), purchase in zip(
                [((p, o), v) for p, o, v in placed], held[:-1], strict=True):
            if position == poison:
                assert purchase is None  # the scorer decodes it, fails, dead-letters it
            else:
                assert purchase == codec.decode(value)
        assert held[-1] is None  # never fetched
        # Once applied, a record's purchase comes with its read, kept for the scorer (live
        # traffic: the replica applies first); once the read is taken, the scorer decodes its
        # own copy.
        ends = {p: o for p, o, _ in placed}
        replica.announce(ends, dict.fromkeys(ends, 0), 2**62)
        replica.step()
        assert replica.applied == len(purchases)
        assert replica.decoded(positions) == held
        with replica.lock:
            for (partition, offset), purchase in zip(positions, held[:-1], strict=False):
                if purchase is not None:
                    replica.take_read(partition, offset, purchase["purchase_id"])
        assert replica.decoded(positions) == [None] * len(positions)
    finally:
        replica.stop()


def test_a_batch_the_replica_fetched_first_is_applied_by_the_scorer_at_once(settings):
    """In a backlog the replica has fetched and decoded the batch's records before the scorer
    takes them (nothing of the offer is new). They are applied on the scorer's thread by
    ``offer`` all the same: the batch is covered at once, without a step of the replica's
    thread (waking it and waiting for it cost 20-50 ms a batch)."""
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.PURCHASES)
    purchases = simulated_purchases(60)
    produce(settings, topics.PURCHASES, [(p["wallet"], codec.encode(p)) for p in purchases])
    placed = read_all_placed(settings, topics.PURCHASES, 30)
    replica = EntityReplica(settings, codec).open()  # driven step by step on this thread
    try:
        step_to_the_ends(replica)
        assert replica.applied == 0  # held, decoded: no batch announced yet
        by_partition: dict[int, list] = {}
        for p, o, v in sorted(placed):
            by_partition.setdefault(p, []).append((p, o, to_ms(codec.decode(v)["occurred_at"]), None))
        batch = [r for rs in by_partition.values() for r in rs[:(len(rs) + 1) // 2]]
        batch = [(p, o, ts, purchase) for (p, o, ts, _), purchase in
                 zip(batch, replica.decoded([(p, o) for p, o, _, _ in batch]), strict=True)]
        assert all(purchase is not None for *_, purchase in batch)
        ends = {p: max(o for q, o, _, _ in batch if q == p) for p in by_partition}
        latest = max(ts for _, _, ts, _ in batch)
        assert not replica.covers(latest, ends)
        replica.announce(ends, {p: min(ts for q, _, ts, _ in batch if q == p) for p in ends},
                         latest)
        assert replica.offer(batch) == 0  # every record was held already
        assert replica.covers(latest, ends)  # ... and is applied now, by this thread
        assert all(replica.next_offset[p] > end for p, end in ends.items())
        assert replica.applied >= len(batch)
    finally:
        replica.stop()


def test_a_partition_at_its_end_counts_only_after_a_fetch_begun_after_the_batch(settings):
    """Records written together (a burst, mid-stream) reach the scorer on one partition while
    this replica's consumer has fetched those of another, caught up before, and its thread
    has not taken them in yet. That partition's end was seen before they were written: a batch
    is covered only once each partition has applied everything up to the end the broker gives
    when asked after the batch was announced (``announce``'s fence), and by then the other
    partition's records are applied (a scale-out run read counts without them:
    ``test_scale_out``)."""
    with replica_at_the_ends(settings) as (codec, replica, burst):
        produce(settings, topics.PURCHASES, burst)  # written together, after the ends
        partition, batch, offset, latest, others = burst_batch(settings, codec, replica)
        # the replica's consumer fetches the others meanwhile (its cached ends show them),
        # and no step takes them in
        wait_until(lambda: all(replica.consumer.get_watermark_offsets(
            TopicPartition(replica.topic, p), cached=True)[1] > o for p, o in others.items()),
            30, "the other partitions' new records fetched")  # fmt: skip
        assert all(replica.caught_up[p] for p in others)  # their ends, as seen before
        fence = replica.announce({partition: offset}, {partition: batch[0][2]}, latest)
        assert replica.offer(batch) == len(batch)
        assert replica.covers(latest, {partition: offset})  # what the ends alone would say
        assert not replica.covers(latest, {partition: offset}, fence)
        step_until_covered(replica, latest, {partition: offset}, fence, others)


def test_a_partition_counts_as_done_only_up_to_the_end_the_broker_gives_after_the_batch(
        settings):
    """Records written together (a burst, mid-stream) reach the scorer on one partition
    while this replica's consumer has not yet fetched those of the others (here: paused; in a
    three-worker run librdkafka brought one partition's share 0.6 s after another's), so
    their ends, as this consumer last saw them, predate the burst and rounds of its fetching
    bring nothing. A batch is covered only once each partition has applied everything up to
    the end the broker gives when asked after the batch was announced (``test_scale_out``:
    purchases decided with a third of the crowd counts missing)."""
    with replica_at_the_ends(settings) as (codec, replica, burst):
        every = [TopicPartition(replica.topic, p) for p in replica.held]
        replica.consumer.pause(every)  # its fetch of what comes next lags
        produce(settings, topics.PURCHASES, burst)  # written together, after the ends
        partition, batch, offset, latest, others = burst_batch(settings, codec, replica)
        fence = replica.announce({partition: offset}, {partition: batch[0][2]}, latest)
        assert replica.offer(batch) == len(batch)  # the scorer's copies, applied at once
        for _ in range(5):  # rounds of fetching after the batch, which bring nothing
            replica.step()
        assert all(replica.caught_up[p] for p in others)  # their ends, as seen before
        assert not replica.covers(latest, {partition: offset}, fence)
        assert replica.ends_for >= fence  # ... though the broker was asked after the batch
        replica.consumer.resume(every)
        step_until_covered(replica, latest, {partition: offset}, fence, others)


def test_the_ends_are_answered_while_the_replica_s_fetch_is_held(settings) -> None:
    """The broker answers one connection's requests in order: asked on the consumer's own
    connection, where the ends wait behind a fetch the broker holds until a record comes or
    ``fetch.wait.max.ms`` passes. Asked on a client that fetches nothing, they come at once."""
    held_s = 3.0
    kafka = settings.kafka.model_copy(update={"fetch_wait_max_ms": int(held_s * 1000)})
    settings = settings.model_copy(update={"kafka": kafka})
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.PURCHASES)
    produce(settings, topics.PURCHASES,
            [(p["wallet"], codec.encode(p)) for p in simulated_purchases(10)])
    replica = EntityReplica(settings, codec).open()
    try:
        step_to_the_ends(replica)  # nothing more to fetch: the broker holds each fetch
        took = []
        for _ in range(4):
            started = time.monotonic()
            ends = replica._ask_ends()
            took.append(time.monotonic() - started)
            assert ends is not None and sum(ends.values()) == 10
        assert max(took) < held_s / 4, took
    finally:
        replica.stop()
