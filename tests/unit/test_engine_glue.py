"""``FeatureEngine``'s per-event glue (a wallet with rows filed in the expiry wheel without
``due_ms``, a transfer's sides without a list, ``_advance`` called only when an event moves
the watermark), ``read_transfer`` and ``MarkJoin.remember`` give exactly what
the former code gave (``tests/support/engine_reference.py``): the same rows, the same late
events refused with the same message, the same wallets, expiry wheel, watermarks and kept
purchases after every event, on simulated weeks and on hand-built edge cases (mints, burns,
a wallet sending to itself, zero to zero, one side late, wallets idle long enough to be
forgotten, summarised or deleted)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from models.simulator import SimConfig, simulate
from processors.expiry import WALLET_IDLE_MS
from processors.features import FeatureEngine, LateEventError
from processors.marks import MarkJoin
from processors.records import read_transfer
from tests.support import engine_reference
from tests.support.engine_reference import ReferenceEngine, ReferenceMarkJoin

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
A, B, C = "0x" + "a" * 40, "0x" + "b" * 40, "0x" + "C" * 40  # C in upper case
ZERO = "0x" + "0" * 40
IDLE = timedelta(milliseconds=WALLET_IDLE_MS)


def purchase(when: datetime, wallet: str = A, n: int = 0) -> tuple[str, dict]:
    return "purchase", {
        "purchase_id": f"p-{when.isoformat()}-{wallet}-{n}", "occurred_at": when,
        "wallet": wallet, "user_id": "u1", "organizer_id": "org1", "show_id": "show1",
        "ticket_id": f"0x{'e' * 40}:{n}", "quantity": 1, "unit_price_minor": 5_000,
        "currency": "USD", "channel": "PRIMARY", "seller_wallet": None, "payment_method": "CARD",
        "card_fingerprint": "card1", "card_country": "DE", "email_domain": "example.com",
        "ip": "203.0.113.7", "geo": None, "device_id": "dev1", "user_agent": "Mozilla/5.0",
        "account_created_at": T0 - timedelta(days=10), "sale_opens_at": None,
        "mfa_enabled": True, "phone_verified": True, "email_verified": False,
    }  # fmt: skip


def auth(when: datetime, kind: str, wallet: str | None = A) -> tuple[str, dict]:
    return "auth", {"event_id": f"a-{when.isoformat()}-{kind}-{wallet}", "occurred_at": when,
                    "kind": kind, "user_id": "u1", "wallet": wallet, "ip": "203.0.113.7",
                    "geo": None, "device_id": None, "user_agent": None}  # fmt: skip


def transfer(when: datetime, kind: str, frm: str, to: str, token: str = "1") -> tuple[str, dict]:
    return "transfer", {
        "chain_id": 1, "block_number": 1, "block_hash": "0x1", "block_time": when,
        "tx_hash": f"0x{when.timestamp()}", "log_index": 0, "contract": "0x" + "E" * 40,
        "standard": "ERC721", "token_id": token, "amount": "1", "from_address": frm,
        "to_address": to, "kind": kind, "price_wei": None}  # fmt: skip


def _state(engine: FeatureEngine) -> tuple:
    return ({k: w.to_dict() for k, w in engine.wallets.items()}, list(engine.wallets),
            {b: set(keys) for b, keys in engine._wheel.buckets.items()}, engine.watermark_ms,
            engine._swept_ms, engine.marks.purchases, engine.marks.store.by_key)


def _outcome(engine: FeatureEngine, kind: str, record: dict) -> object:
    try:
        return engine.process_row(kind, record)
    except LateEventError as late:
        return ("late", str(late), late.kind, late.key, late.ts_ms, late.watermark_ms)


def _compare(events: list, every: int = 1) -> int:
    old, new = ReferenceEngine(), FeatureEngine()
    assert type(new.marks) is MarkJoin and type(old.marks) is ReferenceMarkJoin
    late = 0
    for i, (kind, record) in enumerate(events):
        expected = _outcome(old, kind, record)
        assert _outcome(new, kind, record) == expected, f"event {i} ({kind})"
        late += isinstance(expected, tuple) and expected[:1] == ("late",)
        if i % every == 0 or i == len(events) - 1:
            assert _state(new) == _state(old), f"after event {i} ({kind})"
    return late


@pytest.mark.slow
def test_a_simulated_week_with_labels_leaves_the_same_rows_and_states():
    events = list(simulate(SimConfig(seed=11, days=7)))
    assert {k for k, _ in events} == {"purchase", "auth", "transfer", "label"}
    _compare(events, every=9999)


@pytest.mark.slow
def test_a_dense_resale_heavy_simulation_leaves_the_same_rows_and_states():
    events = list(simulate(SimConfig(seed=3, days=3, n_users=800, n_shows=20,
                                     purchase_rate=0.6, fraud_rate=0.2, resale_share=0.4,
                                     list_share=0.4, travel_prob=0.2)))
    _compare(events, every=1499)


def test_transfer_sides_lateness_and_expiry_edge_cases_as_before():
    t = T0
    events = [
        transfer(t, "MINT", ZERO, A, "1"),  # one side: the receiver
        transfer(t, "TRANSFER", ZERO, ZERO, "9"),  # no side at all
        transfer(t + timedelta(minutes=1), "TRANSFER", A, A, "1"),  # a wallet to itself
        transfer(t + timedelta(minutes=2), "SALE", A, C, "1"),  # C upper case: lowered
        transfer(t + timedelta(minutes=3), "SALE", C.lower(), B, "1"),  # B < C: address order
        transfer(t + timedelta(minutes=4), "BURN", B, ZERO, "1"),  # one side: the sender
        transfer(t + timedelta(hours=2), "MINT", ZERO, B, "8"),
        transfer(t + timedelta(minutes=20), "SALE", A, B, "2"),  # B is late, A is not
        transfer(t + timedelta(minutes=20), "SALE", B, A, "3"),  # the same, sides swapped
        transfer(t + timedelta(hours=2), "MINT", ZERO, A, "10"),
        transfer(t + timedelta(minutes=21), "SALE", B, A, "3"),  # both late: A named first
        transfer(t - timedelta(hours=5), "MINT", ZERO, "0x" + "d" * 40, "4"),  # new and late?
        auth(t + timedelta(hours=3), "LOGIN_FAILED"),
        auth(t + timedelta(hours=3), "LOGIN_OK", None),  # no wallet: nothing applied
        auth(t + timedelta(hours=3), "LOGIN_FAILED", "0x" + "f" * 40),  # auth only: deleted
        purchase(t + timedelta(hours=3), A, 1),
        transfer(t + timedelta(hours=4), "SALE", A, "0x" + "9" * 40, "5"),  # resale: kept
        # past every wallet's idle time: summaries, deletions, a forgotten wallet
        auth(t + IDLE + timedelta(hours=5), "LOGIN_OK", "0x" + "8" * 40),
        purchase(t + IDLE + timedelta(hours=6), "0x" + "f" * 40, 2),
        transfer(t + IDLE + timedelta(hours=7), "SALE", B, A, "6"),
        purchase(t + IDLE * 3, A, 3),
        transfer(t + IDLE * 5, "MINT", ZERO, B, "7"),
        auth(t + IDLE * 5 + timedelta(hours=2), "PASSWORD_CHANGED", B),
    ]
    assert _compare(events) >= 3


def test_read_transfer_gives_what_it_gave_and_raises_what_it_raised():
    _, record = transfer(T0, "SALE", "0xAbC" + "0" * 37, C, "0x1F")
    got, expected = read_transfer(record), engine_reference.read_transfer(record)
    assert got == expected and type(got) is type(expected)
    assert got.key == "0x" + "e" * 40 + ":0x1F"
    for broken in ({k: v for k, v in record.items() if k != "contract"},
                   {**record, "block_time": T0.replace(tzinfo=None)},
                   {**record, "to_address": None},
                   {k: v for k, v in record.items() if k != "kind"}):
        with pytest.raises(Exception) as want:
            engine_reference.read_transfer(broken)
        with pytest.raises(want.type) as got_error:
            read_transfer(broken)
        assert str(got_error.value) == str(want.value)


def test_remember_keeps_what_it_kept():
    _, full = purchase(T0)
    sparse = {"purchase_id": "p2", "occurred_at": T0, "wallet": A}
    for record in (full, sparse, {**full, "card_fingerprint": None, "user_id": ""}):
        old, new = ReferenceMarkJoin(), MarkJoin()
        old.remember(record)
        new.remember(record)
        assert new.purchases == old.purchases
