"""The wallet's and the order's features as Python computed them before they moved to native
code (``processors/native/src/wallet.rs``, ``WalletFeatures``): a frozen copy of
``processors/compute.py``'s ``_history``, ``_no_history``, ``_diversity``,
``_first_diversity`` and the ages, and ``processors/signals.py``'s ``geo_features``,
``auth_features`` and ``token_features``, as of commit b7ab47a. Do not change it: it is what
``tests/unit/test_native_wallet_features.py`` holds the native values to.

``reference_row`` gives what ``order_features`` put in ``FEATURE_NAMES`` order up to
``email_verified`` (the entity store's values read from it as they were).
"""

from __future__ import annotations

import bisect
import math
from operator import itemgetter

from processors.apply import DEFAULT_CONFIG, FeatureConfig
from processors.entity_state import EntityStore
from processors.records import Order
from processors.ring import count_ts_between, rows_between
from processors.state import PURCHASE_RETENTION_MS, PurchaseFact, WalletState
from processors.timeutil import DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS, haversine_km

MISSING = -1.0
DEVICE_MEMORY_MS = 90 * DAY_MS
TOKEN_WINDOW_MS = 30 * DAY_MS
DUPLICATE_WINDOW_MS = 10 * MINUTE_MS


def reference_row(
    o: Order, wallet: WalletState, entities: EntityStore, config: FeatureConfig = DEFAULT_CONFIG
) -> tuple[float, ...]:
    ts = o.ts
    ring = wallet.purchases
    rows = rows_between(ring, ts - PURCHASE_RETENTION_MS, ts) if ring else ring
    return (
        *(_history(o, wallet, rows, config) if rows else _no_history(o, wallet)),
        *(_diversity(o, rows) if rows else _first_diversity(o)),
        0.0 if wallet.first_seen_ms is None else max(0.0, (ts - wallet.first_seen_ms) / DAY_MS),
        MISSING if o.account_created_ms is None
        else max(0.0, (ts - o.account_created_ms) / DAY_MS),
        *geo_features(o, wallet, config),
        *entities.entity_values(o),
        *auth_features(o, wallet),
        *token_features(o, wallet, entities.mint_to_resale(o)),
        *entities.show_values(o),
        float(o.quantity),
        float(o.amount),
        math.log1p(o.amount),
        flag(o.channel == "RESALE"),
        flag(o.mfa_enabled),
        flag(o.phone_verified),
        flag(o.email_verified),
    )  # fmt: skip


def flag(value: object) -> float:
    return 1.0 if value else 0.0


def age(now: int, then: int | None, unit_ms: int) -> float:
    if then is None or then > now:
        return MISSING
    return (now - then) / unit_ms


def _no_history(o: Order, wallet: WalletState) -> tuple[float, ...]:
    return (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, age(o.ts, wallet.last_purchase_ms, SECOND_MS),
            float(wallet.purchases_total), _amount_vs_avg(o, wallet), 0.0, 0.0)  # fmt: skip


def _history(
    o: Order, wallet: WalletState, rows: list[PurchaseFact], config: FeatureConfig
) -> tuple[float, ...]:
    ts, show_id, amount, quantity = o.ts, o.show_id, int(float(o.amount)), o.quantity
    day = rows[_since(rows, ts - DAY_MS) :]
    hour = day[_since(day, ts - HOUR_MS) :]
    amounts_1h = list(map(_AMOUNT, hour))
    small = config.small_amount_minor
    dups = sum(
        1
        for r in hour[_since(hour, ts - DUPLICATE_WINDOW_MS) :]
        if r.show_id == show_id and r.amount_minor == amount and r.quantity == quantity
    )
    return (
        float(len(hour)), float(len(day)),
        float(sum(amounts_1h)), float(sum(map(_AMOUNT, day))),
        float(sum(map(_QUANTITY, day))),
        float(sum(r.quantity for r in rows if r.show_id == show_id)),
        age(ts, rows[-1].ts_ms, SECOND_MS),
        float(wallet.purchases_total),
        _amount_vs_avg(o, wallet),
        float(sum(1 for a in amounts_1h if a <= small)),
        float(dups),
    )  # fmt: skip


def _amount_vs_avg(o: Order, wallet: WalletState) -> float:
    if wallet.purchases_total and wallet.amount_total_minor > 0:
        return float(o.amount) / (wallet.amount_total_minor / wallet.purchases_total)
    return MISSING


def _since(rows: list[PurchaseFact], lo_excl: int) -> int:
    return bisect.bisect_right(rows, lo_excl, key=_TS)


def _first_diversity(o: Order) -> tuple[float, ...]:
    return (
        *(
            0.0 if v is None else 1.0
            for v in (o.show_id, o.payment_method, o.card, o.ip, o.device, o.country)
        ),
        MISSING,
    )


def _diversity(o: Order, rows: list[PurchaseFact]) -> tuple[float, ...]:
    recent = rows[_since(rows, o.ts - DAY_MS) :]
    current = (o.show_id, o.payment_method, o.card, o.ip, o.device, o.country)
    out = []
    for getter, value in zip(_DIVERSITY_FIELDS, current, strict=True):
        values = set(map(getter, recent))
        values.add(value)
        values.discard(None)
        out.append(float(len(values)))
    seen = set(map(_COUNTRY, rows))
    seen.discard(None)
    country = o.country
    out.append(MISSING if country is None or not seen else flag(country not in seen))
    return tuple(out)


def geo_features(o: Order, wallet: WalletState, config: FeatureConfig) -> tuple[float, ...]:
    ring, ts = wallet.geo_points, o.ts
    j = bisect.bisect_right(ring, ts, key=_TS) if o.geo and ring else 0
    if not j or ring[j - 1].ts_ms <= ts - DAY_MS:
        return MISSING, MISSING, MISSING
    prev = ring[j - 1]
    km = haversine_km(prev.lat, prev.lon, o.lat, o.lon)  # type: ignore[arg-type]
    gap_ms = ts - prev.ts_ms
    return (
        km,
        km / (max(gap_ms, config.min_travel_ms) / HOUR_MS),
        flag(km > config.impossible_km and gap_ms < config.impossible_within_ms),
    )


def auth_features(o: Order, wallet: WalletState) -> tuple[float, ...]:
    ts = o.ts
    login = wallet.login_ok_ms
    recent_login = login is not None and ts - HOUR_MS < login <= ts
    if o.device is None:
        new_device = MISSING
    else:
        seen = wallet.devices.get(o.device)
        new_device = flag(seen is None or seen <= ts - DEVICE_MEMORY_MS)
    return (
        float(count_ts_between(wallet.failed_logins, ts - HOUR_MS, ts)),
        float(count_ts_between(wallet.mfa_failures, ts - HOUR_MS, ts)),
        float(wallet.fails_before_login_ok) if recent_login else 0.0,
        age(ts, login, SECOND_MS),
        age(ts, wallet.password_changed_ms, SECOND_MS),
        age(ts, wallet.email_changed_ms, SECOND_MS),
        new_device,
    )


def token_features(o: Order, wallet: WalletState, mint_to_resale: float) -> tuple[float, ...]:
    ts = o.ts
    avg_hold = min_flip = MISSING
    resales = rows_between(wallet.resales, ts - TOKEN_WINDOW_MS, ts) if wallet.resales else []
    if resales:
        holds = [r.hold_ms for r in resales if r.hold_ms >= 0]
        flips = [r.flip_ms for r in resales if r.flip_ms >= 0]
        avg_hold = sum(holds) / len(holds) / HOUR_MS if holds else MISSING
        min_flip = min(flips) / MINUTE_MS if flips else MISSING
    sent_ms = wallet.sent.get(o.ticket_id)
    return (
        avg_hold, mint_to_resale, min_flip, float(len(resales)),
        float(count_ts_between(wallet.wash_cycles, ts - TOKEN_WINDOW_MS, ts)),
        flag(sent_ms is not None and sent_ms <= ts),
        float(len(wallet.holdings)),
    )  # fmt: skip


_TS, _AMOUNT, _QUANTITY = itemgetter(0), itemgetter(2), itemgetter(3)
_COUNTRY = itemgetter(8)
_DIVERSITY_FIELDS = tuple(itemgetter(i) for i in (1, 4, 5, 9, 10, 8))
