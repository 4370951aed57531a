"""A partition the scorer takes behind the others still gets replay's features.

In a backlog Faust may deliver one partition hours, on sparse traffic days, of event time
ahead of another. The entity replica prunes rows below its floor; the floor must stay at what
the lagging partition still asks about (``EntityReplica.announce``), else its crowd and entity
features lose rows that replay counts. Here one worker scores six partitions, partition ``p``
taken ``p * 40`` minutes (then ``p * 8`` hours: 40 h, beyond a day) of event time behind
partition 0, and every feature of every purchase must equal replay's.
Once every partition is scored to its end, nothing holds the floor back (memory stays bounded).
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from infra import topics
from infra.chaos_report import read_all_placed
from models.replay import replay_rows
from processors.apply import DEFAULT_CONFIG, apply_order
from processors.compute import FEATURE_NAMES, order_features
from processors.crowd import crowd_read
from processors.marks import MarkStore
from processors.records import read_order
from processors.state import WalletState
from processors.timeutil import HOUR_MS, MINUTE_MS, to_ms
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from streams import entity_replica
from streams.entity_replica import MAX_LAG_MS, EntityReplica
from tests.integration.test_worker_restart import simulated_purchases
from tests.support.kafka import produce

pytestmark = pytest.mark.integration

SPACING_S = 30  # one purchase every 30 s: keys see several purchases per window
BATCH = 12


def hot_sale(n: int, spacing_s: int = SPACING_S) -> list[dict]:
    """Simulated purchases (their wallets, shows, IPs, cards) re-timed one every ``spacing_s``:
    a busy sale (30 s: 600 purchases are ~5 h of event time), in event-time order."""
    purchases = simulated_purchases(n)
    start = purchases[0]["occurred_at"]
    return [{**p, "occurred_at": start + timedelta(seconds=spacing_s * i)}
            for i, p in enumerate(purchases)]


@pytest.mark.parametrize(("spacing_s", "lag_ms"), [(SPACING_S, 40 * MINUTE_MS),
                                                   (6 * 60, 12 * HOUR_MS)])  # fmt: skip
def test_a_partition_scored_hours_behind_the_others_gets_replays_features(settings, spacing_s,
                                                                          lag_ms):
    """Partition p is scored ``p * lag_ms`` of event time behind partition 0: up to 200 min
    in a busy sale; up to 60 h in sparse traffic (600 purchases over 60 h), beyond a day."""
    assert 5 * lag_ms < MAX_LAG_MS
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.PURCHASES)
    purchases = hot_sale(600, spacing_s)
    produce(settings, topics.PURCHASES, [(p["wallet"], codec.encode(p)) for p in purchases])
    records = [(p, o, to_ms((purchase := codec.decode(v))["occurred_at"]) or 0, purchase)
               for p, o, v in read_all_placed(settings, topics.PURCHASES, 30)]
    assert len(records) == len(purchases)
    partitions = sorted({p for p, _, _, _ in records})
    assert len(partitions) > 3  # lags up to 200 min: beyond the crowd rows' 70 min
    expected = {p["purchase_id"]: row for p, row in
                replay_rows([("purchase", p) for p in purchases])}
    # The scorer's batches, one partition each, as Faust may deliver them: each partition in
    # offset order, partition p taken lag_ms * p of event time behind partition 0.
    by_partition: dict[int, list] = {}
    for record in sorted(records):
        by_partition.setdefault(record[0], []).append(record)
    batches = [rs[i:i + BATCH] for rs in by_partition.values() for i in range(0, len(rs), BATCH)]
    batches.sort(key=lambda b: b[0][2] + b[0][0] * lag_ms)

    replica = EntityReplica(settings, codec).open()
    wallets: dict[str, WalletState] = {}
    marks = MarkStore()
    differing: dict[str, int] = {}
    try:
        for batch in batches:
            offsets: dict[int, int] = {}
            earliest: dict[int, int] = {}
            for p, o, ts, _ in batch:
                offsets[p] = max(offsets.get(p, -1), o)
                earliest[p] = min(earliest.get(p, ts), ts)
            until = max(ts for _, _, ts, _ in batch)
            replica.announce(offsets, earliest, until, dict.fromkeys(partitions))
            replica.offer(batch)
            deadline = time.monotonic() + 30
            while not replica.covers(until, offsets):
                assert time.monotonic() < deadline, (replica.next_offset, offsets)
                replica.step()
            with replica.lock:  # the scorer's reads (streams/scoring.py)
                for _, _, _, purchase in batch:
                    o = read_order(purchase)
                    wallet = wallets.setdefault(o.wallet, WalletState(address=o.wallet))
                    crowd = crowd_read(purchase, o.unit)
                    row = order_features(o, purchase, wallet, replica.store, DEFAULT_CONFIG,
                                         replica.crowds, crowd, marks)
                    apply_order(o, wallet, DEFAULT_CONFIG)
                    for name, live, replayed in zip(FEATURE_NAMES, row,
                                                    expected[o.purchase_id], strict=True):
                        if live != replayed:
                            differing[name] = differing.get(name, 0) + 1
        assert differing == {}, differing

        # Every partition scored to its end and caught up: the floor is the last batch's.
        while not all(replica.caught_up.values()):
            replica.step()
        replica.announce(offsets, earliest, until, dict.fromkeys(partitions))
        assert replica.store.floor_ms == replica.crowds.floor_ms == min(earliest.values())
    finally:
        replica.stop()


def test_a_partition_with_records_not_yet_scored_holds_the_floor_until_it_stalls(settings,
                                                                               monkeypatch):
    """Partitions the worker owns and has not scored to their end hold the floor back, where
    they are while they move, and once they stalled (``STALL_S`` of wall time, 0 here) never
    more than ``MAX_LAG_MS`` behind the newest batch; a partition whose records are all
    committed does not hold it."""
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.PURCHASES)
    purchases = hot_sale(60)
    produce(settings, topics.PURCHASES, [(p["wallet"], codec.encode(p)) for p in purchases])
    records = sorted((p, o, to_ms(codec.decode(v)["occurred_at"]) or 0)
                     for p, o, v in read_all_placed(settings, topics.PURCHASES, 30))
    ends = {p: o for p, o, _ in records}  # each partition's last offset
    partition, offset, ts = records[-1]  # the last record of the last partition
    batch_ms = ts + MAX_LAG_MS + 6 * HOUR_MS  # far ahead of every other partition's records
    replica = EntityReplica(settings, codec).open()
    try:
        deadline = time.monotonic() + 30
        while not all(replica.caught_up.values()):
            assert time.monotonic() < deadline
            replica.step()
        # Nothing scored, nothing committed: every other partition is pending, behind, and new
        # to the worker: it holds the floor where it is (not scored yet: anywhere)
        replica.announce({partition: offset}, {partition: batch_ms}, batch_ms,
                         dict.fromkeys(ends))
        assert replica.store.floor_ms == replica.crowds.floor_ms == -1
        # ... until it stalls: then no more than MAX_LAG_MS behind the newest batch
        monkeypatch.setattr(entity_replica, "STALL_S", 0.0)
        replica.announce({partition: offset}, {partition: batch_ms}, batch_ms,
                         dict.fromkeys(ends))
        assert replica.store.floor_ms == replica.crowds.floor_ms == batch_ms - MAX_LAG_MS
        # Every record committed by the group: nothing is pending, the floor is the batch's.
        replica.announce({partition: offset}, {partition: batch_ms}, batch_ms,
                         {p: o + 1 for p, o in ends.items()})
        assert replica.store.floor_ms == replica.crowds.floor_ms == batch_ms
    finally:
        replica.stop()
