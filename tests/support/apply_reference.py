"""Applying a purchase to its wallet as Python did it before it moved to native code
(``processors/native/src/updates.rs``, ``WalletUpdates``): a frozen copy of
``processors/apply.py``'s ``apply_order``, ``_acquire_ticket`` and ``_comes_back``,
``processors/state.py``'s ``WalletState.first_time``, ``observe`` and ``prune`` (as functions
of the state), and ``processors/ring.py``'s ``prune_dict``, as of commit bf64b2f. Do not change
it: it is what ``tests/unit/test_native_wallet_updates.py`` holds the native updates to.

``apply_auth_at``, ``apply_read_transfer``, ``_receive_token`` and ``_send_token`` are the
auth and chain paths of ``processors/apply.py`` as they were before they moved to native code
too (``WalletUpdates.apply_auth`` / ``apply_transfer``, as of commit 008c156), calling the
reference ``first_time``, ``observe`` and ``_comes_back``, so a sequence of mixed events runs
through Python alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from processors.apply import DEFAULT_CONFIG, FeatureConfig, Record
from processors.records import Order, Transfer
from processors.ring import (
    cap_dict,
    count_ts_between,
    drop_rows_until,
    drop_ts_until,
    insert_row,
    insert_ts,
)
from processors.state import (
    APPLIED_CAP,
    AUTH_CAP,
    AUTH_RETENTION_MS,
    DEVICE_RETENTION_MS,
    DEVICES_CAP,
    FAILED_LOGIN_KINDS,
    GEO_CAP,
    GEO_RETENTION_MS,
    HOLDINGS_CAP,
    LOGIN_OK_KINDS,
    MFA_FAILED_KINDS,
    PRUNE_EVERY_MS,
    PURCHASE_RETENTION_MS,
    PURCHASES_CAP,
    RESALES_CAP,
    SLACK_MS,
    TOKEN_RETENTION_MS,
    TOKENS_CAP,
    WASH_CAP,
    GeoPoint,
    Holding,
    PurchaseFact,
    ResaleFact,
    WalletState,
)
from processors.timeutil import HOUR_MS


def apply_order(o: Order, wallet: WalletState, config: FeatureConfig = DEFAULT_CONFIG) -> bool:
    ts = o.ts
    wallet.address = wallet.address or o.wallet
    if not first_time(wallet, o.purchase_id):
        return False
    insert_row(wallet.purchases, PurchaseFact(
        ts, o.show_id, o.amount, o.quantity, o.payment_method, o.card, o.lat, o.lon, o.country,
        o.ip, o.device, o.channel), PURCHASES_CAP)  # fmt: skip
    wallet.purchases_total += 1
    wallet.amount_total_minor += o.amount
    last = wallet.last_purchase_ms
    if not last or last < ts:  # max(last or ts, ts)
        wallet.last_purchase_ms = ts
    if o.lat is not None and o.lon is not None:
        assert o.country is not None  # read_order takes all three from one Geo (country required)
        insert_row(wallet.geo_points, GeoPoint(ts, o.lat, o.lon, o.country), GEO_CAP)
    if o.device:
        wallet.devices[o.device] = max(wallet.devices.get(o.device, ts), ts)
        cap_dict(wallet.devices, DEVICES_CAP)
    _acquire_ticket(wallet, o)
    # The mark advances at most to ingested_at + max_future_skew_ms (FeatureConfig).
    ingested = o.ingested_ms
    mark = (
        ts
        if ingested is None or ingested + config.max_future_skew_ms >= ts
        else (ingested + config.max_future_skew_ms)
    )
    observe(wallet, mark, "purchase")
    return True


def _acquire_ticket(wallet: WalletState, o: Order) -> None:
    key, ts = o.ticket_id, o.ts
    if _comes_back(wallet, key, ts):
        insert_ts(wallet.wash_cycles, ts, WASH_CAP)
    wallet.holdings[key] = Holding(ts, o.unit)
    if o.channel == "PRIMARY":
        wallet.mints[key] = ts
        cap_dict(wallet.mints, TOKENS_CAP)


def _comes_back(wallet: WalletState, key: str, ts: int) -> bool:
    sent_ms = wallet.sent.get(key)
    if sent_ms is None or sent_ms > ts:
        return False
    held = wallet.holdings.get(key)
    return held is None or held.acquired_ms < sent_ms


def first_time(wallet: WalletState, record_id: str) -> bool:
    if record_id in wallet.applied:
        return False
    wallet.applied.append(record_id)
    if len(wallet.applied) > APPLIED_CAP:
        del wallet.applied[0]
    return True


def observe(wallet: WalletState, ts_ms: int, stream: str = "purchase") -> None:
    if ts_ms > wallet.watermark_ms:
        wallet.watermark_ms = ts_ms
    if ts_ms > wallet.marks.get(stream, 0):
        wallet.marks[stream] = ts_ms
    if wallet.first_seen_ms is None or ts_ms < wallet.first_seen_ms:
        wallet.first_seen_ms = ts_ms
    if wallet.watermark_ms - wallet.pruned_ms >= PRUNE_EVERY_MS:
        prune(wallet)


def prune(wallet: WalletState) -> None:
    # The slowest stream's mark: never drop rows a lagging stream still needs.
    wm = min(wallet.marks.values()) if wallet.marks else wallet.watermark_ms
    if wallet.purchases:
        drop_rows_until(wallet.purchases, wm - PURCHASE_RETENTION_MS - SLACK_MS)
    if wallet.geo_points:
        drop_rows_until(wallet.geo_points, wm - GEO_RETENTION_MS - SLACK_MS)
    if wallet.failed_logins:
        drop_ts_until(wallet.failed_logins, wm - AUTH_RETENTION_MS - SLACK_MS)
    if wallet.mfa_failures:
        drop_ts_until(wallet.mfa_failures, wm - AUTH_RETENTION_MS - SLACK_MS)
    if wallet.resales:
        drop_rows_until(wallet.resales, wm - TOKEN_RETENTION_MS - SLACK_MS)
    if wallet.wash_cycles:
        drop_ts_until(wallet.wash_cycles, wm - TOKEN_RETENTION_MS - SLACK_MS)
    if wallet.devices:
        prune_dict(wallet.devices, wm - DEVICE_RETENTION_MS - SLACK_MS, DEVICES_CAP)
    if wallet.mints:
        prune_dict(wallet.mints, wm - TOKEN_RETENTION_MS - SLACK_MS, TOKENS_CAP)
    if wallet.sent:
        prune_dict(wallet.sent, wm - TOKEN_RETENTION_MS - SLACK_MS, TOKENS_CAP)
    if len(wallet.holdings) > HOLDINGS_CAP:
        cap_dict(wallet.holdings, HOLDINGS_CAP, _acquired)
    wallet.pruned_ms = wm


def _acquired(h: Holding) -> int:
    return h.acquired_ms


def prune_dict(d: dict, cutoff: int, cap: int, ts_of: Callable[[Any], int] = int) -> None:
    """Drop entries whose timestamp is ``<= cutoff``, then the oldest ones over ``cap``."""
    if not d:
        return
    if ts_of is int:  # int timestamps (the wallet's maps): compared as they are
        stale = [k for k, v in d.items() if v <= cutoff]
    else:
        stale = [k for k, v in d.items() if ts_of(v) <= cutoff]
    for k in stale:
        del d[k]
    cap_dict(d, cap, ts_of)


def apply_auth_at(event: Record, ts: int, wallet: WalletState) -> None:
    if not first_time(wallet, event["event_id"]):
        return
    kind = event["kind"]
    if kind in FAILED_LOGIN_KINDS:
        insert_ts(wallet.failed_logins, ts, AUTH_CAP)
    elif kind in MFA_FAILED_KINDS:
        insert_ts(wallet.mfa_failures, ts, AUTH_CAP)
    elif kind in LOGIN_OK_KINDS and (wallet.login_ok_ms is None or ts >= wallet.login_ok_ms):
        wallet.login_ok_ms = ts
        wallet.fails_before_login_ok = count_ts_between(wallet.failed_logins, ts - HOUR_MS, ts)
    elif kind == "PASSWORD_CHANGED":
        wallet.password_changed_ms = max(wallet.password_changed_ms or ts, ts)
    elif kind == "EMAIL_CHANGED":
        wallet.email_changed_ms = max(wallet.email_changed_ms or ts, ts)
    geo = event.get("geo")
    if geo:
        insert_row(wallet.geo_points, GeoPoint(ts, geo["lat"], geo["lon"], geo["country"]), GEO_CAP)
    observe(wallet, ts, "auth")


def apply_read_transfer(t: Transfer, wallet: WalletState) -> None:
    if not first_time(wallet, t.record_id):
        return
    if t.receiver == wallet.address:
        _receive_token(wallet, t.key, t.kind, t.ts)
    if t.sender == wallet.address:
        _send_token(wallet, t.key, t.kind, t.ts)
    observe(wallet, t.ts, "transfer")


def _receive_token(wallet: WalletState, key: str, kind: str, ts: int) -> None:
    if kind != "MINT" and _comes_back(wallet, key, ts):
        insert_ts(wallet.wash_cycles, ts, WASH_CAP)
    held = wallet.holdings.get(key)
    if held is None or held.acquired_ms > ts:
        wallet.holdings[key] = Holding(ts, held.price_minor if held else -1)
    if kind == "MINT":
        wallet.mints[key] = min(wallet.mints.get(key, ts), ts)
        cap_dict(wallet.mints, TOKENS_CAP)


def _send_token(wallet: WalletState, key: str, kind: str, ts: int) -> None:
    held = wallet.holdings.pop(key, None)
    if kind == "BURN":
        return
    hold_ms = ts - held.acquired_ms if held is not None and held.acquired_ms <= ts else -1
    mint_ms = wallet.mints.get(key)
    flip_ms = -1
    if kind == "SALE" and mint_ms is not None and mint_ms <= ts:
        flip_ms = ts - mint_ms
        del wallet.mints[key]  # only the first resale after the mint counts
    insert_row(wallet.resales, ResaleFact(ts, hold_ms, flip_ms), RESALES_CAP)
    wallet.sent[key] = max(wallet.sent.get(key, ts), ts)
    cap_dict(wallet.sent, TOKENS_CAP)
