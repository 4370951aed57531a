"""Confirmed fraud as marks (pure): labels mark a purchase's wallet, card, device and account,
corrections remove them, queries see only labels from before the purchase, and a fraud
detection names its linked cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from processors.decide import Blocked, decide_batch
from processors.entity_state import entity_store
from processors.features import FEATURE_NAMES, purchase_features
from processors.marks import (
    MARK_FEATURES,
    MISSING,
    MarkStore,
    cluster_id,
    mark_keys,
    mark_record,
    mark_row,
    order_mark_row,
    purchase_cluster,
)
from processors.records import read_order
from processors.rules import load_ruleset
from processors.state import WalletState
from processors.timeutil import DAY_MS, to_ms
from tests.support.records import purchase

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
MS0 = to_ms(T0)


def label(pid: str, days: float, fraud: bool, source: str = "CHARGEBACK") -> dict:
    return {"purchase_id": pid, "occurred_at": T0 + timedelta(days=days), "is_fraud": fraud,
            "source": source, "pattern": None}


def test_a_label_marks_every_entity_of_its_purchase():
    p = purchase(1, user_id="u-1", occurred_at=T0)
    record = mark_record(label("p-1", 10, True), p)
    assert record["keys"] == mark_keys(p) == [
        f"wallet:{p['wallet']}", "card:card-1", "device:dev-1", "account:u-1"]
    store = MarkStore()
    assert store.apply(record)
    after = MS0 + 11 * DAY_MS
    assert store.prior("card:card-1", after) == (1, MS0 + 10 * DAY_MS)
    assert store.prior("card:card-1", MS0 + 10 * DAY_MS) == (0, None)  # strictly before


def test_a_review_overturning_the_chargeback_removes_the_marks():
    p = purchase(1, occurred_at=T0)
    store = MarkStore()
    store.apply(mark_record(label("p-1", 10, True), p))
    store.apply(mark_record(label("p-1", 12, False, "MANUAL_REVIEW"), p))
    assert store.prior("device:dev-1", MS0 + 30 * DAY_MS) == (0, None) and len(store) == 0
    # the chargeback redelivered after the correction changes nothing
    assert not store.apply(mark_record(label("p-1", 10, True), p))
    assert len(store) == 0


def test_features_count_marks_on_entities_and_the_linked_cluster():
    store = MarkStore()
    store.apply(mark_record(label("p-1", 1, True), purchase(1, occurred_at=T0)))
    store.apply(mark_record(label("p-2", 2, True), purchase(2, occurred_at=T0)))
    now = purchase(9, occurred_at=T0 + timedelta(days=3), device_id="dev-1")
    got = store.features(now, {now["wallet"], purchase(2)["wallet"]}, MS0 + 3 * DAY_MS)
    assert got == {"fraud_marks_wallet": 0.0, "fraud_marks_card": 0.0,
                   "fraud_marks_device": 1.0, "fraud_marks_account": 0.0,
                   "fraud_marks_cluster": 1.0, "days_since_fraud_mark": 1.0}
    clean = store.features(purchase(7, device_id=None), set(), MS0 + 3 * DAY_MS)
    assert clean["fraud_marks_device"] == 0.0 and clean["days_since_fraud_mark"] == MISSING
    assert mark_row(purchase(7), MarkStore(), list, MS0) == tuple(clean.values())  # empty: same


def test_purchase_features_count_the_marks_they_are_given():
    store = MarkStore()
    store.apply(mark_record(label("p-1", 1, True), purchase(1, occurred_at=T0)))
    now = purchase(9, occurred_at=T0 + timedelta(days=3), device_id="dev-1")
    wallet = WalletState(address=now["wallet"])
    features = purchase_features(now, wallet, marks=store)
    assert features["fraud_marks_device"] == 1.0 and features["days_since_fraud_mark"] == 2.0
    unmarked = purchase_features(now, wallet)
    assert unmarked["fraud_marks_device"] == 0.0


def test_ring_members_sharing_a_device_get_one_cluster_id():
    store = entity_store()
    ring = [purchase(n, occurred_at=T0 + timedelta(minutes=n), device_id="dev-ring",
                     ip="198.51.100.7") for n in range(3)]
    for p in ring:
        store.apply_order(read_order(p))
    later = purchase(1, occurred_at=T0 + timedelta(minutes=10), device_id="dev-ring",
                     ip="198.51.100.7")
    wallets = sorted(p["wallet"] for p in ring)
    assert purchase_cluster(store, read_order(later)) == f"cluster:{wallets[0]}"
    assert cluster_id("0xb", []) == "cluster:0xb"


def test_the_cluster_id_is_the_smallest_address_of_the_wallet_and_its_linked_cluster():
    """``purchase_cluster`` (the store's smallest linked address against the wallet's own)
    names what ``cluster_id`` names from the whole linked set: a wallet before, among and after
    the others, and one with no linked wallet in a store that never saw it."""
    store = entity_store()
    shared = [purchase(n, occurred_at=T0 + timedelta(minutes=n), device_id="dev-shared",
                       ip="198.51.100.9", card_fingerprint="card-shared") for n in (3, 5, 7)]
    for p in shared:
        store.apply_order(read_order(p))
    for n in (1, 4, 9):  # smaller, between and larger than the wallets seen
        o = read_order(purchase(n, occurred_at=T0 + timedelta(minutes=10),
                                device_id="dev-shared"))
        assert purchase_cluster(store, o) == cluster_id(o.wallet, store.linked_wallets(o))
    alone = read_order(purchase(8, occurred_at=T0, device_id="dev-x", ip="203.0.113.1",
                                card_fingerprint="card-x"))
    assert purchase_cluster(entity_store(), alone) == cluster_id(alone.wallet, [])
    assert purchase_cluster(store, alone) == cluster_id(alone.wallet, store.linked_wallets(alone))


def test_order_mark_row_is_mark_row_and_asks_no_cluster_without_marks():
    """With no mark (no store, an empty one, one whose marks were all corrected) the row is
    mark_row's "nothing confirmed" without the cluster being read; with marks, mark_row's
    values over the order's linked cluster."""
    entities = entity_store()
    ring = [purchase(n, occurred_at=T0 + timedelta(days=2, minutes=n), device_id="dev-1")
            for n in (1, 2)]
    for p in ring:
        entities.apply_order(read_order(p))
    now = purchase(9, occurred_at=T0 + timedelta(days=2, minutes=10), device_id="dev-1")
    o = read_order(now)

    class NoCluster:
        def linked_wallets(self, o):
            raise AssertionError("the cluster is not read when there is no mark")

    corrected = MarkStore()
    corrected.apply(mark_record(label("p-1", 1, True), ring[0]))
    corrected.apply(mark_record(label("p-1", 2, False, "MANUAL_REVIEW"), ring[0]))
    empty = mark_row(now, MarkStore(), list, o.ts)
    for marks in (None, MarkStore(), corrected):
        assert order_mark_row(now, marks, NoCluster(), o) == empty
    marked = MarkStore()
    marked.apply(mark_record(label("p-2", 1, True), ring[1]))
    got = order_mark_row(now, marked, entities, o)
    assert got == mark_row(now, marked, lambda: entities.linked_wallets(o), o.ts)
    assert got[MARK_FEATURES.index("fraud_marks_cluster")] == 1.0


class _Model:
    version = "m"

    def predict(self, X):
        return np.full(len(X), 0.99, dtype=np.float32)

    def contributions(self, X):
        return np.zeros((len(X), len(FEATURE_NAMES) + 1), dtype=np.float32)


def test_fraud_detected_carries_the_cluster_id():
    p = purchase(1, occurred_at=T0)
    features = {name: 0.0 for name in FEATURE_NAMES}
    outcome = decide_batch([p], [features], _Model(), load_ruleset(), Blocked(), T0,
                           clusters=["cluster:0xabc"])[0]
    fraud = [e for e in outcome.security_events if e["kind"] == "fraud_detected"]
    assert outcome.decision["decision"] == "BLOCKED"
    assert fraud and fraud[0]["details"]["cluster_id"] == "cluster:0xabc"


def test_the_feature_engine_marks_later_purchases_only():
    from processors.features import FeatureEngine

    engine = FeatureEngine()
    first = purchase(1, occurred_at=T0, card_fingerprint="card-x")
    engine.process("purchase", first)
    before = engine.process("purchase", purchase(2, occurred_at=T0 + timedelta(days=1),
                                                 card_fingerprint="card-x"))
    engine.process("label", label("p-1", 2, True))
    after = engine.process("purchase", purchase(3, occurred_at=T0 + timedelta(days=5),
                                                card_fingerprint="card-x"))
    assert before["fraud_marks_card"] == 0.0 and before["days_since_fraud_mark"] == MISSING
    assert after["fraud_marks_card"] == 1.0 and after["days_since_fraud_mark"] == 3.0
    assert after["fraud_marks_wallet"] == 0.0  # another wallet bought with that card
