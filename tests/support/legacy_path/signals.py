"""Feature groups read from context beyond the wallet's purchase history: geo velocity,
auth events, tokens and resale, the show, and entities shared between wallets.

Same conventions as ``processors.compute`` (half-open event-time windows, ``MISSING``).
"""

from __future__ import annotations

from processors.money import unit_price_ref
from processors.ring import count_ts_between, rows_between
from processors.state import WalletState
from processors.timeutil import DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS, haversine_km, to_ms
from tests.support.legacy_path.apply import FeatureConfig, Record
from tests.support.legacy_path.entity_state import (
    ENTITY_WALLETS_CAP,
    POPULARITY_WINDOW_MS,
    SHOW_RETENTION_MS,
    EntityState,
    ShowState,
)

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


def geo_features(out: dict, p: Record, wallet: WalletState, ts: int, config: FeatureConfig) -> None:
    """Distance and speed from the wallet's latest earlier point (purchases and logins, 24 h).

    Speed uses a time gap of at least ``config.min_travel_ms``; impossible travel is more
    than ``impossible_km`` within less than ``impossible_within_ms``.
    """
    out["geo_distance_km"] = out["geo_speed_kmh"] = out["impossible_travel"] = MISSING
    geo = p.get("geo")
    earlier = rows_between(wallet.geo_points, ts - DAY_MS, ts) if geo else []
    if not earlier:
        return
    prev = earlier[-1]
    km = haversine_km(prev.lat, prev.lon, geo["lat"], geo["lon"])
    gap_ms = ts - prev.ts_ms
    out["geo_distance_km"] = km
    out["geo_speed_kmh"] = km / (max(gap_ms, config.min_travel_ms) / HOUR_MS)
    out["impossible_travel"] = flag(
        km > config.impossible_km and gap_ms < config.impossible_within_ms
    )


def auth_features(out: dict, p: Record, wallet: WalletState, ts: int) -> None:
    out["failed_logins_1h"] = float(count_ts_between(wallet.failed_logins, ts - HOUR_MS, ts))
    out["mfa_failures_1h"] = float(count_ts_between(wallet.mfa_failures, ts - HOUR_MS, ts))
    login = wallet.login_ok_ms
    recent_login = login is not None and ts - HOUR_MS < login <= ts
    out["fails_before_login_ok"] = float(wallet.fails_before_login_ok) if recent_login else 0.0
    out["secs_since_login_ok"] = age(ts, login, SECOND_MS)
    out["secs_since_password_change"] = age(ts, wallet.password_changed_ms, SECOND_MS)
    out["secs_since_email_change"] = age(ts, wallet.email_changed_ms, SECOND_MS)
    device = p.get("device_id")
    if device is None:
        out["new_device"] = MISSING
    else:
        seen = wallet.devices.get(device)
        out["new_device"] = flag(seen is None or seen <= ts - DEVICE_MEMORY_MS)


def token_features(
    out: dict, p: Record, wallet: WalletState, show: ShowState | None, ts: int
) -> None:
    resales = rows_between(wallet.resales, ts - TOKEN_WINDOW_MS, ts)
    holds = [r.hold_ms for r in resales if r.hold_ms >= 0]
    flips = [r.flip_ms for r in resales if r.flip_ms >= 0]
    out["avg_hold_time_h"] = sum(holds) / len(holds) / HOUR_MS if holds else MISSING
    out["wallet_min_flip_min"] = min(flips) / MINUTE_MS if flips else MISSING
    out["resales_30d"] = float(len(resales))
    out["wash_cycles_30d"] = float(count_ts_between(wallet.wash_cycles, ts - TOKEN_WINDOW_MS, ts))
    sent_ms = wallet.sent.get(p["ticket_id"])
    out["ticket_previously_held"] = flag(sent_ms is not None and sent_ms <= ts)
    out["holdings_count"] = float(len(wallet.holdings))
    primary = show.first_sale(p["ticket_id"], ts) if show is not None else None
    is_resale = p["channel"] == "RESALE"
    out["mint_to_resale_min"] = (
        age(ts, primary[0], MINUTE_MS) if is_resale and primary is not None else MISSING
    )
    out["resale_markup"] = MISSING
    if is_resale and show is not None:
        base = primary[1] if primary is not None else _median_price(show, True, ts)
        if base and base > 0:
            out["resale_markup"] = unit_price_ref(p) / base


def _median_price(show: ShowState, primary: bool, ts: int) -> float | None:
    """Median of the show's latest prices in the channel, strictly before ``ts`` (7 d)."""
    prices = show.prices_before(primary, ts - SHOW_RETENTION_MS, ts)
    if not prices:
        return None
    prices.sort()
    mid = len(prices) // 2
    return prices[mid] if len(prices) % 2 else (prices[mid - 1] + prices[mid]) / 2


def show_features(out: dict, p: Record, show: ShowState | None, ts: int) -> None:
    """Price level and popularity of the show, from its purchases strictly before ``ts``."""
    out["price_deviation"] = out["show_popularity_1h"] = MISSING
    opens = to_ms(p.get("sale_opens_at"))
    if show is not None:
        median = _median_price(show, p["channel"] == "PRIMARY", ts)
        if median:
            out["price_deviation"] = unit_price_ref(p) / median
        out["show_popularity_1h"] = float(show.sales_between(ts - POPULARITY_WINDOW_MS, ts))
        opens = show.sale_open_ms if opens is None else opens
    if opens is None:
        out["secs_since_sale_open"] = out["before_sale_open"] = MISSING
    else:
        out["secs_since_sale_open"] = max(0.0, (ts - opens) / SECOND_MS)
        out["before_sale_open"] = flag(ts < opens)


def entity_features(
    out: dict,
    p: Record,
    ip: EntityState | None,
    device: EntityState | None,
    card: EntityState | None,
    ts: int,
) -> None:
    """Wallets sharing this purchase's IP, device or card in the 24 h before it (this wallet
    included), saturating at ``ENTITY_WALLETS_CAP``.

    ``linked_wallets`` is the 1-hop cluster size: the distinct wallets that shared the IP,
    the device or the card of this purchase in the 24 h before it, this wallet included.
    """
    lo, me = ts - DAY_MS, p["wallet"]
    linked = {me}
    for name, state, present in (
        ("wallets_per_ip_24h", ip, True),
        ("wallets_per_device_24h", device, p.get("device_id") is not None),
        ("wallets_per_card_24h", card, p.get("card_fingerprint") is not None),
    ):
        if not present:
            out[name] = MISSING
            continue
        wallets = state.wallets_between(lo, ts) if state is not None else set()
        wallets.add(me)
        linked |= wallets
        out[name] = float(min(len(wallets), ENTITY_WALLETS_CAP))
    out["linked_wallets"] = float(min(len(linked), ENTITY_WALLETS_CAP))
