"""Event-time expiry of whole wallets: states in, changes out; summaries change no feature."""

from __future__ import annotations

from datetime import timedelta

import pytest

from models.simulator import SimConfig, simulate
from processors import statecodec
from processors.expiry import TOKEN_IDLE_MS, WALLET_IDLE_MS, ExpiryWheel, expire, summarise
from processors.features import FeatureEngine, LateEventError, apply_purchase, purchase_features
from processors.state import FraudMark, Holding, PurchaseFact, ResaleFact, WalletState
from processors.timeutil import DAY_MS, HOUR_MS, to_ms
from tests.unit.test_processors_features import CONTRACT, A, B, C, _story, at, auth, purchase

pytestmark = pytest.mark.unit

NOW = 100 * DAY_MS
FACT = PurchaseFact(0, "s1", 5000, 1, "CARD", "c1", 52.5, 13.4, "DE", "ip1", "d1", "PRIMARY")


def buyer(watermark_ms: int) -> WalletState:
    return WalletState(address=A, watermark_ms=watermark_ms, first_seen_ms=0,
                       purchases=[FACT._replace(ts_ms=watermark_ms)], purchases_total=1,
                       amount_total_minor=5000, last_purchase_ms=watermark_ms,
                       devices={"d1": watermark_ms}, holdings={"t1": Holding(watermark_ms, 5000)},
                       marks={"purchase": watermark_ms}, applied=["p1"])  # fmt: skip


def test_expire_lists_each_key_that_changes_and_how():
    busy, idle = buyer(NOW - DAY_MS), buyer(NOW - WALLET_IDLE_MS)
    auth_only = WalletState(address=B, watermark_ms=NOW - WALLET_IDLE_MS, first_seen_ms=1,
                            failed_logins=[NOW - WALLET_IDLE_MS], marks={"auth": 1},
                            applied=["a1"])  # fmt: skip
    flagged = WalletState(address=C, watermark_ms=1, first_seen_ms=1, failed_logins=[1],
                          fraud_marks=[FraudMark(1, "chargeback", "p9")], applied=["a2"])
    seller = WalletState(address="s", watermark_ms=NOW - TOKEN_IDLE_MS, first_seen_ms=1,
                         resales=[ResaleFact(NOW - TOKEN_IDLE_MS, 5, -1)], marks={"transfer": 1},
                         applied=["t1"])  # fmt: skip
    items = [("busy", busy), ("idle", idle), ("auth-only", auth_only), ("flagged", flagged),
             ("seller", seller)]
    summary = WalletState(address=A, watermark_ms=idle.watermark_ms, first_seen_ms=0,
                          purchases_total=1, amount_total_minor=5000,
                          last_purchase_ms=idle.watermark_ms, devices=dict(idle.devices),
                          holdings=dict(idle.holdings), marks=dict(idle.marks),
                          applied=["p1"])  # fmt: skip
    assert expire(items, NOW) == [
        ("idle", summary),
        ("auth-only", None),
        ("flagged", WalletState(address=C, watermark_ms=1, first_seen_ms=1, applied=["a2"],
                                fraud_marks=[FraudMark(1, "chargeback", "p9")])),
        ("seller", None),  # its only resale left the 30 d window: nothing worth keeping
    ]  # fmt: skip
    assert expire([("idle", summary)], NOW + 50 * DAY_MS) == []  # a summary stays


def test_nothing_expires_one_millisecond_before_its_horizon():
    assert expire([("w", buyer(NOW - WALLET_IDLE_MS + 1))], NOW) == []


def _later_purchases(after_ms: int) -> list[dict]:
    """Purchases of A after the summary: a sold ticket bought back, a known device, a resale,
    days, weeks and months later."""
    start = at() + timedelta(milliseconds=after_ms - to_ms(at()))
    out = []
    for i, gap in enumerate((timedelta(0), timedelta(hours=1), timedelta(days=20),
                             timedelta(days=40), timedelta(days=100))):  # fmt: skip
        out.append(purchase(start + gap, wallet=A, device_id="d1", ticket_id=f"{CONTRACT}:{i}",
                            channel=("PRIMARY", "RESALE")[i % 2], purchase_id=f"later{i}")[1])
    return out


def test_a_summarised_wallet_gives_every_later_purchase_the_features_of_the_full_state():
    engine = FeatureEngine()
    for kind, record in _story(2):
        engine.process(kind, record)
    for address in (A, B, C):
        full = engine.wallets[address]
        now = full.watermark_ms + WALLET_IDLE_MS
        summary = summarise(full, now)
        assert summary is not None and not summary.purchases and len(summary.applied) <= 8
        for p in _later_purchases(now):
            p = {**p, "wallet": address}
            before_full, before_summary = full.to_dict(), summary.to_dict()
            assert purchase_features(p, full) == purchase_features(
                p, summary)
            assert (full.to_dict(), summary.to_dict()) == (before_full, before_summary)
            full, summary = _applied(p, full), _applied(p, summary)


def _applied(p: dict, wallet: WalletState) -> WalletState:
    """A copy of ``wallet`` with ``p`` applied (the original is left as it was)."""
    twin = statecodec.decode(statecodec.encode(wallet))
    apply_purchase(p, twin)
    return twin


def _month(seed: int) -> list[tuple[str, dict]]:
    return [(k, r) for k, r in simulate(SimConfig(seed=seed, days=30, n_users=600))
            if k in ("purchase", "auth", "transfer")]


def _run(engine: FeatureEngine, events) -> list:
    out = []
    for kind, record in events:
        try:
            out.append(engine.process(kind, record))
        except LateEventError as exc:
            out.append(str(exc))
    return out


def test_replay_with_expiry_gives_the_features_of_a_replay_that_never_expires():
    events = _month(3)
    expiring, keeping = FeatureEngine(), FeatureEngine()
    keeping.sweep = lambda: None  # type: ignore[method-assign]
    assert _run(expiring, events) == _run(keeping, events)
    summaries = [w for w in expiring.wallets.values() if not w.purchases and not w.geo_points]
    assert len(summaries) > 50


def test_a_deleted_wallet_is_new_again_whether_or_not_the_sweep_ran():
    events = [auth(at(), "LOGIN_FAILED", wallet=B), purchase(at(days=9), wallet=C),
              purchase(at(days=9, minutes=1), wallet=B)]  # fmt: skip
    swept, unswept = FeatureEngine(), FeatureEngine()
    unswept.sweep = lambda: None  # type: ignore[method-assign]
    for engine in (swept, unswept):
        for kind, record in events[:2]:
            engine.process(kind, record)
    assert B not in swept.wallets and B in unswept.wallets
    features = [engine.process(*events[2]) for engine in (swept, unswept)]
    assert features[0] == features[1] and features[0]["wallet_age_days"] == 0.0


def test_the_wheel_hands_out_keys_once_their_hour_has_passed():
    wheel = ExpiryWheel()
    wheel.file("a", 5 * HOUR_MS + 10)
    wheel.file("b", 7 * HOUR_MS)
    wheel.file("a", 5 * HOUR_MS + 20)  # filed twice in one hour: handed out once
    wheel.file("never", None)
    assert wheel.pop_due(6 * HOUR_MS - 2) == []
    assert wheel.pop_due(6 * HOUR_MS - 1) == ["a"]
    assert wheel.pop_due(100 * HOUR_MS) == ["b"] and len(wheel) == 0
