"""A purchase's step in one native call (``processors.features.PURCHASES``,
``processors/native/src/purchase.rs``) gives what the Python glue it replaced gave
(``tests/support/purchase_step_reference.py``): the same rows, the same late purchases
refused with the same message after the stores took them, the same errors for records that
cannot be read, and the same wallets, expiry wheel, watermarks, kept purchases, marks and
stores after every event, on simulated weeks with labels, under another config, and on
hand-built edge cases (late, redelivered, marked, sparse, a mapping that is not a dict, a
wallet idle long enough to be forgotten)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import pytest

from models.simulator import SimConfig, simulate
from processors.apply import FeatureConfig, LateEventError
from processors.expiry import WALLET_IDLE_MS
from processors.features import FeatureEngine
from processors.timeutil import MINUTE_MS
from tests.support.purchase_step_reference import PythonStepEngine

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
A, B = "0x" + "a" * 40, "0x" + "b" * 40
IDLE = timedelta(milliseconds=WALLET_IDLE_MS)


def purchase(when: datetime, wallet: str = A, n: int = 0, **fields: object) -> tuple[str, dict]:
    return "purchase", {
        "purchase_id": f"p-{n}", "occurred_at": when, "ingested_at": when,
        "wallet": wallet, "user_id": "u1", "organizer_id": "org1", "show_id": "show1",
        "ticket_id": f"0x{'e' * 40}:{n}", "quantity": 1, "unit_price_minor": 5_000,
        "currency": "USD", "channel": "PRIMARY", "seller_wallet": None, "payment_method": "CARD",
        "card_fingerprint": "card1", "card_country": "DE", "email_domain": "example.com",
        "ip": "203.0.113.7", "geo": {"lat": 52.5, "lon": 13.4, "country": "DE"},
        "device_id": "dev1", "user_agent": "Mozilla/5.0",
        "account_created_at": T0 - timedelta(days=10), "sale_opens_at": T0 - timedelta(hours=1),
        "mfa_enabled": True, "phone_verified": True, "email_verified": False, **fields,
    }  # fmt: skip


def label(when: datetime, n: int, is_fraud: bool = True) -> tuple[str, dict]:
    return "label", {"purchase_id": f"p-{n}", "occurred_at": when, "is_fraud": is_fraud,
                     "source": "CHARGEBACK"}


def _state(engine: FeatureEngine) -> tuple:
    return ({k: w.to_dict() for k, w in engine.wallets.items()}, list(engine.wallets),
            {b: set(keys) for b, keys in engine._wheel.buckets.items()}, engine.watermark_ms,
            engine._swept_ms, engine.marks.purchases, engine.marks.store.by_key,
            len(engine.entities), len(engine.crowds))


def _outcome(engine: FeatureEngine, kind: str, record: object) -> object:
    try:
        return engine.process_row(kind, record)  # type: ignore[arg-type]
    except LateEventError as late:
        return ("late", str(late), late.kind, late.key, late.ts_ms, late.watermark_ms)
    except Exception as error:  # a record that cannot be read: the same error
        return ("error", type(error), str(error))


def _compare(events: list, config: FeatureConfig | None = None, every: int = 1) -> list:
    old, new = PythonStepEngine(config), FeatureEngine(config)
    outcomes = []
    for i, (kind, record) in enumerate(events):
        expected = _outcome(old, kind, record)
        got = _outcome(new, kind, record)
        assert got == expected, f"event {i} ({kind})"
        if isinstance(got, tuple) and type(got[0]) is float:
            assert list(map(float.hex, got)) == list(map(float.hex, expected))  # type: ignore[arg-type]
        outcomes.append(got)
        if i % every == 0 or i == len(events) - 1:
            assert _state(new) == _state(old), f"after event {i} ({kind})"
    return outcomes


@pytest.mark.slow
def test_a_simulated_week_with_labels_gives_the_same_rows_and_states():
    events = list(simulate(SimConfig(seed=11, days=7)))
    assert {k for k, _ in events} == {"purchase", "auth", "transfer", "label"}
    _compare(events, every=4999)


def test_a_dense_simulation_under_another_config_gives_the_same_rows_and_states():
    events = list(simulate(SimConfig(seed=3, days=2, n_users=400, n_shows=10,
                                     purchase_rate=0.6, fraud_rate=0.2, resale_share=0.4)))
    config = FeatureConfig(allowed_lateness_ms=MINUTE_MS, max_future_skew_ms=0,
                           small_amount_minor=2_000, impossible_km=100.0)
    _compare(events, config, every=997)


def test_purchase_edge_cases_as_before():
    t = T0
    _, first = purchase(t, A, 1)
    missing_wallet = {k: v for k, v in first.items() if k != "wallet"}
    naive = {**first, "purchase_id": "p-naive", "occurred_at": t.replace(tzinfo=None)}
    events = [
        purchase(t, A, 1),
        purchase(t, A, 1),  # a redelivery: nothing applied twice
        purchase(t + timedelta(hours=2), A, 2, ip="198.51.100.9"),
        purchase(t + timedelta(minutes=30), A, 3, ip="198.51.100.9"),  # late: the stores count it
        purchase(t + timedelta(hours=2, minutes=1), B, 4, ip="198.51.100.9"),  # ... and B sees it
        label(t + timedelta(hours=2, minutes=2), 2),  # a fraud mark: the marks' row asked
        purchase(t + timedelta(hours=2, minutes=3), B, 5, device_id=None, card_fingerprint=None,
                 user_id=None, geo=None, sale_opens_at=None),
        ("purchase", MappingProxyType(purchase(t + timedelta(hours=2, minutes=4), B, 6)[1])),
        ("purchase", missing_wallet),
        ("purchase", naive),
        purchase(t + timedelta(hours=3), A, 7, occurred_at=None),
        purchase(t + IDLE + timedelta(hours=5), B, 8),  # B idle: forgotten first
        purchase(t + IDLE * 3, A, 9),
        purchase(t + IDLE * 3 - timedelta(minutes=6), A, 10),  # late by a minute
    ]
    outcomes = _compare(events)
    assert outcomes[3][:1] == ("late",) and outcomes[13][:1] == ("late",)
    assert [o[:2] for o in outcomes[8:11]] == [("error", KeyError), ("error", ValueError),
                                              ("error", AssertionError)]
    linked = outcomes[4]
    assert isinstance(linked, tuple) and linked[23] == 2.0  # wallets_per_ip_24h: A's late one
