"""Batch decisions (pure): features + model + rules + policy → Decision records and security
events; entity observations match what replay applies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import chain
from pathlib import Path

import numpy as np
import pytest
from fastavro import parse_schema
from fastavro.validation import validate

from processors.decide import Blocked, as_matrix, decide_batch, feature_matrix
from processors.entity_state import entity_keys, entity_store
from processors.features import FEATURE_NAMES, FeatureEngine, purchase_features
from processors.records import read_order
from processors.rules import RuleSet
from processors.state import WalletState

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
A, B = "0x" + "a" * 40, "0x" + "b" * 40
DECISION_SCHEMA = parse_schema(json.loads(Path("schemas/decision.avsc").read_text()))


class FakeModel:
    """Scores rows from a fixed list; contributions favour velocity_1h."""

    def __init__(self, scores: list[float], version: str = "m1") -> None:
        self.scores, self.version = scores, version

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.scores[: len(X)], dtype=np.float32)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        out = np.zeros((len(X), len(FEATURE_NAMES) + 1), dtype=np.float32)
        out[:, FEATURE_NAMES.index("velocity_1h")] = 2.0
        out[:, -1] = -3.0  # bias
        return out


def purchase(i: int, wallet: str = A, **over: object) -> dict:
    record = {
        "purchase_id": f"p{i}", "occurred_at": T0 + timedelta(minutes=i), "wallet": wallet,
        "user_id": "u1", "organizer_id": "org1", "show_id": "s1", "ticket_id": f"0xee:{i}",
        "quantity": 1, "unit_price_minor": 5_000, "currency": "EUR", "channel": "PRIMARY",
        "seller_wallet": None, "payment_method": "CARD", "card_fingerprint": "c1",
        "card_country": "DE", "email_domain": "example.com", "ip": "81.2.69.160",
        "geo": {"lat": 52.52, "lon": 13.405, "country": "DE"}, "device_id": "d1",
        "user_agent": "Mozilla/5.0", "account_created_at": T0 - timedelta(days=300),
        "sale_opens_at": None, "mfa_enabled": True, "phone_verified": True,
        "email_verified": True, "ingested_at": T0 + timedelta(minutes=i, milliseconds=5),
    }  # fmt: skip
    record.update(over)
    return record


def run(purchases: list[dict], scores: list[float], blocked: Blocked = Blocked(), **kw):
    engine = FeatureEngine()
    engine.process("purchase", purchase(-600))  # some history: the wallet is not brand new
    features = [engine.process("purchase", p) for p in purchases]
    decided_at = purchases[-1]["occurred_at"] + timedelta(milliseconds=20)
    return decide_batch(purchases, features, FakeModel(scores), RuleSet.default(), blocked,
                        decided_at, **kw)  # fmt: skip


def test_a_batch_gives_one_schema_valid_decision_per_purchase():
    outcomes = run(
        [
            purchase(0),
            purchase(1, wallet=B, card_fingerprint="c2"),
            purchase(2, unit_price_minor=7_000),
        ],
        [0.05, 0.9, 0.5],
    )
    assert [o.decision["decision"] for o in outcomes] == [
        "APPROVED",
        "BLOCKED",
        "REQUIRE_2FA",
    ]
    for o in outcomes:
        assert validate(o.decision, DECISION_SCHEMA, raise_errors=True)
        assert o.decision["decision_id"] == f"dec_{o.decision['purchase_id']}"
        assert (o.decision["model_version"], o.decision["rules_version"]) == ("m1", "builtin")
    assert outcomes[0].decision["latency_ms"] == 120_015.0  # decided_at - ingested_at
    assert outcomes[0].decision["contributions"] == {}
    assert outcomes[1].decision["contributions"] == {"velocity_1h": 2.0}
    assert [e["kind"] for e in outcomes[1].security_events] == ["fraud_detected"]


def test_blocklisted_wallet_is_blocked_with_reasons_and_security_events():
    [outcome] = run([purchase(0)], [0.01], Blocked(wallets={A}))
    assert (outcome.decision["decision"], outcome.decision["score"]) == ("BLOCKED", 1.0)
    assert outcome.decision["reasons"][0]["code"] == "blocklisted_wallet"
    assert [e["kind"] for e in outcome.security_events] == ["fraud_detected", "blocklist_hit"]


def test_impossible_travel_raises_a_security_event():
    far = purchase(1, geo={"lat": 40.71, "lon": -74.0, "country": "US"})
    outcome = run([purchase(0), far], [0.0, 0.0])[1]
    assert outcome.decision["features"]["impossible_travel"] == 1.0
    assert "impossible_travel" in [r["code"] for r in outcome.decision["reasons"]]
    assert "impossible_travel" in [e["kind"] for e in outcome.security_events]


def test_challenger_scores_are_recorded():
    engine = FeatureEngine()
    features = [engine.process("purchase", purchase(0))]
    [outcome] = decide_batch([purchase(0)], features, FakeModel([0.1]), RuleSet.default(),
                             Blocked(), T0, challenger=FakeModel([0.7], "m2"))  # fmt: skip
    assert outcome.decision["challenger_version"] == "m2"
    assert outcome.decision["challenger_score"] == pytest.approx(0.7)


def test_feature_matrix_follows_feature_names():
    engine = FeatureEngine()
    features = [engine.process("purchase", purchase(i)) for i in range(3)]
    X = feature_matrix(features)
    assert X.shape == (3, len(FEATURE_NAMES)) and X.dtype == np.float32
    assert X[2, FEATURE_NAMES.index("velocity_1h")] == 2.0
    assert decide_batch([], [], FakeModel([]), RuleSet.default(), Blocked(), T0) == []


def test_feature_rows_become_the_doubles_numpy_makes_of_them():
    """``as_matrix`` packs rows with struct: bit for bit numpy's float64 of every value
    (NaN payloads, -0.0, infinities, ints past 2**53, bools, numpy scalars), a writable
    matrix; a row holding a value struct refuses (None, a text) is converted by numpy."""
    width = len(FEATURE_NAMES)
    nan_payload = np.frombuffer(np.uint64(0x7FF8_0000_0000_0ABC).tobytes(), np.float64)[0]
    specials = [float("nan"), float(nan_payload), -0.0, float("inf"), -float("inf"), 5e-324,
                2**60 + 1, True, np.float32(0.1), np.float64(-2.5), 7]  # fmt: skip
    rng = np.random.default_rng(4)
    rows = [tuple(rng.normal(size=width).tolist()) for _ in range(20)]
    rows += [tuple(specials[(i + j) % len(specials)] for j in range(width)) for i in range(11)]
    X, same = as_matrix(rows)
    want = np.fromiter(chain.from_iterable(rows), np.float64).reshape(len(rows), width)
    assert same is rows and X.dtype == np.float64 and X.flags.writeable
    assert X.tobytes() == want.tobytes()
    for odd in (None, "1.5"):
        rows[3] = (odd, *rows[3][1:])
        X, _ = as_matrix(rows)
        want = np.fromiter(chain.from_iterable(rows), np.float64).reshape(len(rows), width)
        assert X.tobytes() == want.tobytes()
    with pytest.raises(ValueError, match="hold"):
        as_matrix([(1.0,) * (width - 1)])


def test_entity_states_are_the_same_whatever_the_order_of_application():
    """The live replica applies purchases in partition order, replay in event time: queries
    as of a purchase's time must not see the difference."""
    purchases = [purchase(0), purchase(1, wallet=B, device_id=None), purchase(2)]
    assert entity_keys(purchases[1]) == [("ip", "81.2.69.160"), ("card", "c1"), ("show", "s1")]
    in_order, reversed_ = entity_store(), entity_store()
    for p in purchases:
        in_order.apply_order(read_order(p))
    for p in reversed(purchases):
        reversed_.apply_order(read_order(p))
        reversed_.apply_order(read_order(p))  # a redelivery is applied once
    wallet = WalletState(address=A)
    for p in purchases:
        assert (purchase_features(p, wallet, in_order)
                == purchase_features(p, wallet, reversed_))
