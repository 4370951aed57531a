"""Idle wallets leave memory for a private SQLite file (streams/disk_store.py), unchanged or as
summaries, and the wallet table reads through to it: after a sweep, after a recovery, after a
rebalance. A changelog record never replaces a newer state this worker wrote itself."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import msgspec
import orjson
import pytest
from faust.types import TP

from processors import statecodec
from processors.expiry import SWEEP_EVERY_MS, WALLET_IDLE_MS, summarise
from processors.state import Holding, PurchaseFact, WalletState
from processors.timeutil import DAY_MS, HOUR_MS
from streams.app import app
from streams.disk_store import DiskStore
from streams.tables import MEMORY_IDLE_MS, StateTable, hold, write_held

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


def again(wallet: WalletState, ts: int) -> WalletState:
    """``wallet`` after one more purchase, at ``ts``."""
    return msgspec.structs.replace(
        wallet, watermark_ms=ts, purchases=[*wallet.purchases, FACT._replace(ts_ms=ts)],
        purchases_total=wallet.purchases_total + 1, last_purchase_ms=ts,
        applied=[*wallet.applied, f"p-{ts}"])


@pytest.fixture
def table(tmp_path, request):
    t = StateTable(app, name=f"test-{request.node.name[:40]}", partitions=6)
    t.__dict__["disk"] = DiskStore(tmp_path)  # not the data dir of the settings
    yield t
    t.disk.close()


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
    store = DiskStore(tmp_path)
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


def test_an_idle_wallet_leaves_memory_unchanged_and_is_still_read(table):
    early, late = buyer(A, T), buyer(B, T + MEMORY_IDLE_MS + 2 * SWEEP_EVERY_MS)
    write(table, {A: early})
    assert A in table.data
    sent = write(table, {B: late})  # moves the partition's watermark: A is swept
    assert A not in table.data and B in table.data
    assert table.disk.get(A) == statecodec.encode(early)  # the same bytes: nothing summarised
    assert table.get(A) == early and table.get(B) == late and table.get(C) is None
    assert [key for _, key, _, _ in sent] == [orjson.dumps(B)]  # no changelog record for A
    back = buyer(A, late.watermark_ms + 1)  # active again: in memory, read from there
    write(table, {A: back})
    assert A in table.data and table.get(A) == back


def test_a_wallet_idle_past_its_windows_is_summarised_on_disk_and_the_changelog(table):
    old, fresh = buyer(A, T), buyer(B, T + WALLET_IDLE_MS + 2 * SWEEP_EVERY_MS)
    write(table, {A: old})
    write(table, {C: buyer(C, T + 2 * HOUR_MS + SWEEP_EVERY_MS)})  # A moves to disk as is
    assert A not in table.data and table.disk.get(A) == statecodec.encode(old)
    sent = write(table, {B: fresh})
    summary = summarise(old, fresh.watermark_ms)
    assert table.disk.get(A) == statecodec.encode(summary) and table.get(A) == summary
    changelog = table.changelog_topic.get_topic_name()
    assert [(topic, value, p) for topic, key, value, p in sent if key == orjson.dumps(A)] == [
        (changelog, statecodec.encode(summary), 0)]


def test_recovery_puts_every_wallet_on_disk_and_files_it_for_expiry(table):
    summary_a = summarise(buyer(A, T), T + WALLET_IDLE_MS)
    full_b = buyer(B, T)
    table.data[B] = b"stale: written before the partition was revoked"
    table.disk.put([(C, 3, statecodec.encode(summarise(buyer(C, T), T + WALLET_IDLE_MS)))])
    table.apply_changelog_batch([
        event(0, A, statecodec.encode(buyer(A, T))),  # superseded by its summary below
        event(1, B, statecodec.encode(full_b)),
        event(0, A, statecodec.encode(summary_a)),
        event(3, C, None),  # deleted since: gone from the store too
    ])  # fmt: skip
    assert B not in table.data and len(table.disk) == 2
    assert table.get(A) == summary_a and table.get(B) == full_b and table.get(C) is None
    assert table.expiry.wheel(1).pop_due(T + WALLET_IDLE_MS + HOUR_MS) == [B]


def test_partitions_no_longer_assigned_are_forgotten_after_recovery(table):
    for partition, key in ((0, A), (4, B)):
        table.disk.put([(key, partition, statecodec.encode(buyer(key, T)))])
    write(table, {C: buyer(C, T)}, partition=4)
    assert C in table.data
    changelog = table.changelog_topic.get_topic_name()
    asyncio.run(table.on_recovery_completed({TP(changelog, 0)}, {TP(changelog, 2)}))
    assert table.get(A) is not None and table.get(B) is None and table.get(C) is None


def rebalanced(t: StateTable, active: set[int], generation: int, monkeypatch) -> None:
    """An assignment (of ``generation``) whose active partitions here are ``active``: the
    assignor's actives name their source and changelog partitions."""
    changelog = t.changelog_topic.get_topic_name()
    actives = {TP(changelog, p) for p in active} | {TP("purchases", p) for p in active}
    monkeypatch.setattr(app.assignor, "assigned_actives", lambda: actives)
    asyncio.run(t.on_rebalance(actives, set(), actives, generation))


ONE = buyer(A, T)
TWO = again(ONE, T + HOUR_MS // 2)


def test_a_changelog_record_after_recovery_leaves_the_newer_state_written_since(
        table, monkeypatch) -> None:  # fmt: skip
    """test_scale_out's three workers, 1 run in 35: after a rebalance a wallet's purchase was
    decided and its state (two purchases) written, and its next purchase was decided with the
    state from before (one purchase). The previous owner's last record of the wallet, fetched
    past the highwater recovery read to, waited in Faust's recovery buffer; applied when the
    buffer filled, it took the newer state out of memory and left its own on disk."""
    rebalanced(table, {3}, generation=7, monkeypatch=monkeypatch)
    table.apply_changelog_batch([event(3, A, statecodec.encode(ONE))])  # recovery
    write(table, {A: TWO}, partition=3)  # the next purchase decided here
    table.apply_changelog_batch([event(3, A, statecodec.encode(ONE))])  # the late record
    assert table.get(A) == TWO


def test_the_next_recovery_of_a_partition_kept_leaves_the_newer_state(table, monkeypatch):
    rebalanced(table, {3}, generation=7, monkeypatch=monkeypatch)
    write(table, {A: TWO}, partition=3)
    rebalanced(table, {3, 4}, generation=8, monkeypatch=monkeypatch)  # 3 stays here
    # recovery reads to a highwater taken before this worker's last record came
    table.apply_changelog_batch([event(3, A, statecodec.encode(ONE))])
    assert table.get(A) == TWO


def test_a_partition_not_written_here_yet_takes_the_changelog_s_record(table, monkeypatch):
    rebalanced(table, {3}, generation=7, monkeypatch=monkeypatch)
    table.data[A] = statecodec.encode(ONE)  # written before the partition was revoked
    table.apply_changelog_batch([event(3, A, statecodec.encode(TWO))])  # its next owner's
    assert A not in table.data and table.get(A) == TWO


def test_a_partition_that_went_elsewhere_takes_the_changelog_s_records_again(
        table, monkeypatch) -> None:  # fmt: skip
    rebalanced(table, {3}, generation=7, monkeypatch=monkeypatch)
    write(table, {A: ONE}, partition=3)
    rebalanced(table, {4}, generation=8, monkeypatch=monkeypatch)  # 3: a standby here
    table.apply_changelog_batch([event(3, A, statecodec.encode(TWO))])  # its new owner's
    assert table.get(A) == TWO
    rebalanced(table, {3, 4}, generation=9, monkeypatch=monkeypatch)  # and back
    table.apply_changelog_batch([event(3, A, None)])  # deleted meanwhile
    assert table.get(A) is None


def test_after_a_generation_missed_the_changelog_s_records_are_applied(table, monkeypatch):
    rebalanced(table, {3}, generation=7, monkeypatch=monkeypatch)
    write(table, {A: ONE}, partition=3)
    # out of the group for generation 8 (another worker may have had 3), back in 9
    rebalanced(table, {3}, generation=9, monkeypatch=monkeypatch)
    table.apply_changelog_batch([event(3, A, statecodec.encode(TWO))])
    assert table.get(A) == TWO
