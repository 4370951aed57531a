"""Per-purchase features from state read BEFORE the purchase is applied (pure, read-only).

Conventions (also in README.md):
- windows are half-open in event time: "1 h" means rows with ``t - 1 h < ts <= t``, where
  ``t`` is the purchase's ``occurred_at``; rows later than ``t`` (out-of-order arrivals) are
  not counted, so a within-lateness event gets the value an in-order run would give;
- velocity, amount and count features exclude the current purchase; distinct-value counts
  (``*_24h`` diversity, ``wallets_per_*``, ``linked_wallets``) include it;
- ``MISSING = -1.0`` marks a value that cannot be computed (no history, field absent, not
  applicable); 0/1 flags are -1 when their input is absent.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from operator import itemgetter

from processors.marks import MARK_FEATURES, mark_row
from processors.ring import rows_between
from processors.state import PURCHASE_RETENTION_MS, PurchaseFact, WalletState
from processors.timeutil import DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS, to_ms
from tests.support.legacy_path.apply import (
    DEFAULT_CONFIG,
    FeatureConfig,
    Record,
    check_lateness,
    purchase_amount,
)
from tests.support.legacy_path.crowd import CROWD_FEATURES, CrowdState, crowd_features
from tests.support.legacy_path.entity_state import EntityState, ShowState
from tests.support.legacy_path.signals import (
    MISSING,
    age,
    auth_features,
    entity_features,
    flag,
    geo_features,
    show_features,
    token_features,
)

DUPLICATE_WINDOW_MS = 10 * MINUTE_MS

FEATURE_NAMES: tuple[str, ...] = (
    # wallet purchase history (prior purchases, event-time windows)
    "velocity_1h",
    "velocity_24h",
    "amount_1h_minor",
    "amount_24h_minor",
    "tickets_24h",
    "show_tickets_7d",
    "secs_since_last_purchase",
    "purchases_total",
    "amount_vs_avg",
    "small_probes_1h",
    "duplicates_10m",
    # diversity (distinct values in 24 h, this purchase included)
    "distinct_shows_24h",
    "payment_methods_24h",
    "cards_24h",
    "ips_24h",
    "devices_24h",
    "countries_24h",
    "new_country",
    # identity
    "wallet_age_days",
    "account_age_days",
    # geo velocity
    "geo_distance_km",
    "geo_speed_kmh",
    "impossible_travel",
    # shared entities (24 h)
    "wallets_per_ip_24h",
    "wallets_per_device_24h",
    "wallets_per_card_24h",
    "linked_wallets",
    # account takeover
    "failed_logins_1h",
    "mfa_failures_1h",
    "fails_before_login_ok",
    "secs_since_login_ok",
    "secs_since_password_change",
    "secs_since_email_change",
    "new_device",
    # tokens and resale
    "avg_hold_time_h",
    "mint_to_resale_min",
    "wallet_min_flip_min",
    "resales_30d",
    "wash_cycles_30d",
    "ticket_previously_held",
    "holdings_count",
    # show
    "price_deviation",
    "resale_markup",
    "show_popularity_1h",
    "secs_since_sale_open",
    "before_sale_open",
    # the order itself
    "quantity",
    "amount_minor",
    "log_amount",
    "is_resale",
    "mfa_enabled",
    "phone_verified",
    "email_verified",
    # crowds: aggregates across wallets (processors.crowd; read as empty where not kept)
    *CROWD_FEATURES,
    # confirmed fraud (processors.marks): the per-row path keeps no marks
    *MARK_FEATURES,
)


def purchase_features(
    purchase: Record,
    wallet: WalletState,
    ip: EntityState | None,
    device: EntityState | None,
    card: EntityState | None,
    show: ShowState | None,
    config: FeatureConfig = DEFAULT_CONFIG,
    crowd: Mapping[str, CrowdState | None] | None = None,
) -> dict[str, float]:
    """All of ``FEATURE_NAMES`` for ``purchase``, from the states before it is applied;
    ``crowd`` holds the states of ``processors.crowd.crowd_keys(purchase)``."""
    ts = to_ms(purchase["occurred_at"])
    assert ts is not None
    check_lateness("purchase", ts, wallet, config.allowed_lateness_ms)
    out: dict[str, float] = {}
    _order_features(out, purchase, wallet, ts)
    _history_features(out, purchase, wallet, ts, config)
    geo_features(out, purchase, wallet, ts, config)
    auth_features(out, purchase, wallet, ts)
    token_features(out, purchase, wallet, show, ts)
    show_features(out, purchase, show, ts)
    entity_features(out, purchase, ip, device, card, ts)
    crowd_features(out, purchase, crowd, ts)
    out.update(zip(MARK_FEATURES, mark_row(purchase, None, (ip, device, card), ts), strict=True))
    return {name: out[name] for name in FEATURE_NAMES}


def _order_features(out: dict, p: Record, wallet: WalletState, ts: int) -> None:
    amount = purchase_amount(p)
    out["quantity"] = float(p["quantity"])
    out["amount_minor"] = float(amount)
    out["log_amount"] = math.log1p(amount)
    out["is_resale"] = flag(p["channel"] == "RESALE")
    out["mfa_enabled"] = flag(p.get("mfa_enabled"))
    out["phone_verified"] = flag(p.get("phone_verified"))
    out["email_verified"] = flag(p.get("email_verified"))
    created = to_ms(p.get("account_created_at"))
    out["account_age_days"] = MISSING if created is None else max(0.0, (ts - created) / DAY_MS)
    first = wallet.first_seen_ms
    out["wallet_age_days"] = 0.0 if first is None else max(0.0, (ts - first) / DAY_MS)


def _history_features(
    out: dict, p: Record, wallet: WalletState, ts: int, config: FeatureConfig
) -> None:
    rows = rows_between(wallet.purchases, ts - PURCHASE_RETENTION_MS, ts)
    _velocity(out, p, rows, ts, config)
    _diversity(out, p, rows, ts)
    last = rows[-1].ts_ms if rows else wallet.last_purchase_ms
    out["secs_since_last_purchase"] = age(ts, last, SECOND_MS)
    out["purchases_total"] = float(wallet.purchases_total)
    if wallet.purchases_total and wallet.amount_total_minor > 0:
        average = wallet.amount_total_minor / wallet.purchases_total
        out["amount_vs_avg"] = out["amount_minor"] / average
    else:
        out["amount_vs_avg"] = MISSING


def _velocity(
    out: dict, p: Record, rows: list[PurchaseFact], ts: int, config: FeatureConfig
) -> None:
    """Counts and sums over prior purchases: 1 h, 24 h, 10 min duplicates, this show in 7 d.

    Rows are sorted by time, so each window is a slice found by bisection and summed in C."""
    show_id, quantity = p["show_id"], int(p["quantity"])
    amount = int(out["amount_minor"])
    day = rows[_since(rows, ts - DAY_MS):]
    hour = day[_since(day, ts - HOUR_MS):]
    amounts_1h = list(map(_AMOUNT, hour))
    small = config.small_amount_minor
    dups = sum(1 for r in hour[_since(hour, ts - DUPLICATE_WINDOW_MS):]
               if r.show_id == show_id and r.amount_minor == amount and r.quantity == quantity)
    out["velocity_1h"], out["velocity_24h"] = float(len(hour)), float(len(day))
    out["amount_1h_minor"] = float(sum(amounts_1h))
    out["amount_24h_minor"] = float(sum(map(_AMOUNT, day)))
    out["tickets_24h"] = float(sum(map(_QUANTITY, day)))
    out["show_tickets_7d"] = float(sum(r.quantity for r in rows if r.show_id == show_id))
    out["small_probes_1h"] = float(sum(1 for a in amounts_1h if a <= small))
    out["duplicates_10m"] = float(dups)


def _since(rows: list[PurchaseFact], lo_excl: int) -> int:
    """Index of the first row with ``ts > lo_excl``."""
    return bisect.bisect_right(rows, lo_excl, key=_TS)


def _diversity(out: dict, p: Record, rows: list[PurchaseFact], ts: int) -> None:
    """Distinct values over 24 h including this purchase; a country new to the last 7 d."""
    geo = p.get("geo")
    country = geo["country"] if geo else None
    recent = rows[_since(rows, ts - DAY_MS):]
    current = (p["show_id"], p["payment_method"], p.get("card_fingerprint"), p["ip"],
               p.get("device_id"), country)
    for name, getter, value in zip(_DIVERSITY, _DIVERSITY_FIELDS, current, strict=True):
        values = set(map(getter, recent))
        values.add(value)
        values.discard(None)
        out[name] = float(len(values))
    seen = set(map(_COUNTRY, rows))
    seen.discard(None)
    out["new_country"] = MISSING if country is None or not seen else flag(country not in seen)


_TS, _AMOUNT, _QUANTITY = itemgetter(0), itemgetter(2), itemgetter(3)
_COUNTRY = itemgetter(8)
_DIVERSITY = ("distinct_shows_24h", "payment_methods_24h", "cards_24h", "ips_24h",
              "devices_24h", "countries_24h")
# PurchaseFact fields: show_id 1, payment_method 4, card 5, ip 9, device 10, country 8
_DIVERSITY_FIELDS = tuple(itemgetter(i) for i in (1, 4, 5, 9, 10, 8))
