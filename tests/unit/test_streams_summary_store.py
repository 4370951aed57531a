"""Idle wallets' summaries leave memory for a private SQLite file (streams/summary_store.py),
and the wallet table reads through to it: after a sweep, after a recovery, after a rebalance."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import orjson
import pytest
from faust.types import TP

from processors import statecodec
from processors.expiry import SWEEP_EVERY_MS, WALLET_IDLE_MS, summarise
from processors.state import Holding, PurchaseFact, WalletState
from processors.timeutil import DAY_MS
from streams.app import app
from streams.summary_store import SummaryStore
from streams.tables import StateTable, hold, write_held

pytestmark = pytest.mark.unit

A, B, C = "0x" + "a" * 40, "0x" + "b" * 40, "0x" + "c" * 40
T = 100 * DAY_MS
FACT = PurchaseFact(0, "s1", 5000, 1, "CARD", "c1", 52.5, 13.4, "DE", "ip1", "d1", "PRIMARY")


def buyer(address: str, ts: int) -> WalletState:
    return WalletState(address=address, watermark_ms=ts, first_seen_ms=ts,
                       purchases=[FACT._replace(ts_ms=ts)], purchases_total=1,
                       amount_total_minor=5000, last_purchase_ms=ts, devices={"d1": ts},
                       holdings={"t1": Holding(ts, 5000)}, marks={"purchase": ts},
                       applied=["p-" + address[-4:]])  # fmt: skip


@pytest.fixture
def table(tmp_path, request):
    t = StateTable(app, name=f"test-{request.node.name[:40]}", partitions=6)
    t.__dict__["summaries"] = SummaryStore(tmp_path)  # not the data dir of the settings
    yield t
    t.summaries.close()


def event(partition: int, key=None, value=None):
    return SimpleNamespace(key=key, value=value,
                           message=SimpleNamespace(partition=partition, value=value,
                                                   tp=TP("purchases", partition)))


def write(t: StateTable, states: dict, partition: int = 0) -> list:
    sent: list = []
    hold(t, {key: (state, event(partition)) for key, state in states.items()})
    write_held(t, dict(t.held), lambda *record: sent.append(record))
    return sent


def test_the_store_keeps_replaces_and_forgets_rows_and_leaves_no_file(tmp_path):
    store = SummaryStore(tmp_path)
    assert list(tmp_path.iterdir()) == []  # unlinked once open: nothing left after a kill
    store.put([("k1", 0, b"one"), ("k2", 1, b"two"), ("k3", 2, b"three")])
    store.put([("k1", 0, b"uno")])
    assert (store.get("k1"), store.get("k2"), store.get("nope"), len(store)) == (
        b"uno", b"two", None, 3)
    store.delete(["k2", "nope"])
    store.keep_partitions({0, 1})
    assert (store.get("k1"), store.get("k2"), store.get("k3"), len(store)) == (b"uno", None,
                                                                              None, 1)
    store.keep_partitions(set())
    assert len(store) == 0


def test_a_summarised_wallet_leaves_memory_and_is_still_read(table):
    old, fresh = buyer(A, T), buyer(B, T + WALLET_IDLE_MS + 2 * SWEEP_EVERY_MS)
    write(table, {A: old})
    assert A in table.data
    sent = write(table, {B: fresh})  # moves the partition's watermark: A is swept
    summary = summarise(old, fresh.watermark_ms)
    assert A not in table.data and B in table.data
    assert table.summaries.get(A) == statecodec.encode(summary)
    assert table.get(A) == summary and table.get(B) == fresh and table.get(C) is None
    changelog = table.changelog_topic.get_topic_name()
    assert [(topic, value, p) for topic, key, value, p in sent if key == orjson.dumps(A)] == [
        (changelog, statecodec.encode(summary), 0)]
    back = buyer(A, fresh.watermark_ms + 1)  # active again: in memory, read from there
    write(table, {A: back})
    assert table.get(A) == back


def test_recovery_sends_summaries_to_disk_and_active_wallets_to_memory(table):
    summary_a = summarise(buyer(A, T), T + WALLET_IDLE_MS)
    full_b = buyer(B, T)
    table.summaries.put([(C, 3, statecodec.encode(summarise(buyer(C, T), T + WALLET_IDLE_MS)))])
    table.apply_changelog_batch([
        event(0, A, statecodec.encode(buyer(A, T))),  # superseded by its summary below
        event(1, B, statecodec.encode(full_b)),
        event(0, A, statecodec.encode(summary_a)),
        event(3, C, None),  # deleted since: gone from the store too
    ])  # fmt: skip
    assert A not in table.data and B in table.data and len(table.summaries) == 1
    assert table.get(A) == summary_a and table.get(B) == full_b and table.get(C) is None
    assert B in table.expiry.wheel(1).pop_due(T + WALLET_IDLE_MS + 3_600_000)


def test_partitions_no_longer_assigned_are_forgotten_after_recovery(table):
    for partition, key in ((0, A), (4, B)):
        table.summaries.put([(key, partition, statecodec.encode(summarise(buyer(key, T),
                                                                          T + WALLET_IDLE_MS)))])
    changelog = table.changelog_topic.get_topic_name()
    asyncio.run(table.on_recovery_completed({TP(changelog, 0)}, {TP(changelog, 2)}))
    assert table.get(A) is not None and table.get(B) is None
