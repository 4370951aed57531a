"""Feature groups read from context beyond the wallet's purchase history: geo velocity,
auth events, tokens and resale. Each group returns its values as a tuple in
``FEATURE_NAMES`` order, for an order read once (``processors.records``). The show's and the
shared entities' features come from the ``EntityStore`` (``entity_values``, ``show_values``,
``mint_to_resale``: ``processors/native/src/lib.rs``).

Same conventions as ``processors.compute`` (half-open event-time windows, ``MISSING``).
"""

from __future__ import annotations

import bisect
from operator import itemgetter

from processors.apply import FeatureConfig
from processors.records import Order
from processors.ring import count_ts_between, rows_between
from processors.state import WalletState
from processors.timeutil import DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS, haversine_km

MISSING = -1.0
DEVICE_MEMORY_MS = 90 * DAY_MS
TOKEN_WINDOW_MS = 30 * DAY_MS


def flag(value: object) -> float:
    return 1.0 if value else 0.0


def age(now: int, then: int | None, unit_ms: int) -> float:
    """``now - then`` in units, or MISSING when ``then`` is unknown or later than ``now``."""
    if then is None or then > now:
        return MISSING
    return (now - then) / unit_ms


def geo_features(o: Order, wallet: WalletState, config: FeatureConfig) -> tuple[float, ...]:
    """Distance and speed from the wallet's latest earlier point (purchases and logins, 24 h).

    Speed uses a time gap of at least ``config.min_travel_ms``; impossible travel is more
    than ``impossible_km`` within less than ``impossible_within_ms``.
    """
    ring, ts = wallet.geo_points, o.ts
    j = bisect.bisect_right(ring, ts, key=_TS) if o.geo and ring else 0
    if not j or ring[j - 1].ts_ms <= ts - DAY_MS:
        return MISSING, MISSING, MISSING
    prev = ring[j - 1]
    km = haversine_km(prev.lat, prev.lon, o.lat, o.lon)  # type: ignore[arg-type]
    gap_ms = ts - prev.ts_ms
    return (km, km / (max(gap_ms, config.min_travel_ms) / HOUR_MS),
            flag(km > config.impossible_km and gap_ms < config.impossible_within_ms))


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
    """Hold times and flips of the tokens the wallet sold or sent (30 d), wash cycles, the
    ticket's own history, holdings; ``mint_to_resale``: for a resale, minutes since the
    ticket's primary sale (``EntityStore.mint_to_resale``)."""
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


_TS = itemgetter(0)
