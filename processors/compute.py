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

from processors.apply import DEFAULT_CONFIG, FeatureConfig, Record, check_lateness
from processors.crowd import CROWD_FEATURES, CrowdStore, crowd_values
from processors.entity_state import EntityStore, entity_store
from processors.marks import MARK_FEATURES, MarkStore, mark_row
from processors.records import Order, read_order
from processors.ring import rows_between
from processors.signals import MISSING, age, auth_features, flag, geo_features, token_features
from processors.state import PURCHASE_RETENTION_MS, PurchaseFact, WalletState
from processors.timeutil import DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS

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
    # confirmed fraud on this wallet, card, device, account and linked cluster (labels)
    *MARK_FEATURES,
)


def purchase_features(
    purchase: Record,
    wallet: WalletState,
    entities: EntityStore | None = None,
    config: FeatureConfig = DEFAULT_CONFIG,
    crowd: CrowdStore | None = None,
    marks: MarkStore | None = None,
) -> dict[str, float]:
    """All of ``FEATURE_NAMES`` for ``purchase``, from the states before it is applied;
    ``entities`` is the IP, device, card and show store (``processors.entity_state``; None:
    none seen), ``crowd`` the crowd store (``processors.crowd``), ``marks`` the confirmed
    fraud known so far (``processors.marks``)."""
    order = read_order(purchase)
    check_lateness("purchase", order.ts, wallet, config.allowed_lateness_ms)
    row = order_features(order, purchase, wallet, entities, config, crowd, marks=marks)
    return dict(zip(FEATURE_NAMES, row, strict=True))


def order_features(
    o: Order,
    purchase: Record,
    wallet: WalletState,
    entities: EntityStore | None = None,
    config: FeatureConfig = DEFAULT_CONFIG,
    crowd: CrowdStore | None = None,
    crowd_keyed: Mapping[str, str] | None = None,
    marks: MarkStore | None = None,
) -> tuple[float, ...]:
    """``purchase_features`` as a row in ``FEATURE_NAMES`` order, for an order already read
    (``read_order``) from ``purchase`` and admitted (``check_lateness``): what the batch paths
    stack. ``crowd_keyed``: ``processors.crowd.crowd_keyed(purchase)`` if already computed."""
    ts = o.ts
    ring = wallet.purchases
    rows = rows_between(ring, ts - PURCHASE_RETENTION_MS, ts) if ring else ring
    entities = _NO_ENTITIES if entities is None else entities
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
        *crowd_values(purchase, crowd, o.ts, crowd_keyed),
        *mark_row(purchase, marks, lambda: entities.linked_wallets(o), ts),
    )


_NO_ENTITIES = entity_store()  # never applied to: every IP, device, card and show unseen


def _no_history(o: Order, wallet: WalletState) -> tuple[float, ...]:
    """``_history`` for a wallet with no purchase in the last 7 days."""
    return (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, age(o.ts, wallet.last_purchase_ms, SECOND_MS),
            float(wallet.purchases_total), _amount_vs_avg(o, wallet), 0.0, 0.0)


def _history(
    o: Order, wallet: WalletState, rows: list[PurchaseFact], config: FeatureConfig
) -> tuple[float, ...]:
    """Counts and sums over prior purchases (velocity 1 h, 24 h; this show in 7 d; 10 min
    duplicates), time since the last one, lifetime totals. Rows are sorted by time, so each
    window is a slice found by bisection and summed in C."""
    # The amount as the amount_minor feature holds it (a float), as duplicates always compared.
    ts, show_id, amount, quantity = o.ts, o.show_id, int(float(o.amount)), o.quantity
    day = rows[_since(rows, ts - DAY_MS):]
    hour = day[_since(day, ts - HOUR_MS):]
    amounts_1h = list(map(_AMOUNT, hour))
    small = config.small_amount_minor
    dups = sum(1 for r in hour[_since(hour, ts - DUPLICATE_WINDOW_MS):]
               if r.show_id == show_id and r.amount_minor == amount and r.quantity == quantity)
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
    """Index of the first row with ``ts > lo_excl``."""
    return bisect.bisect_right(rows, lo_excl, key=_TS)


def _first_diversity(o: Order) -> tuple[float, ...]:
    """``_diversity`` with no purchase in the last 7 days: this purchase's values alone."""
    return (*(0.0 if v is None else 1.0 for v in (o.show_id, o.payment_method, o.card, o.ip,
                                                    o.device, o.country)), MISSING)


def _diversity(o: Order, rows: list[PurchaseFact]) -> tuple[float, ...]:
    """Distinct values over 24 h including this purchase; a country new to the last 7 d."""
    recent = rows[_since(rows, o.ts - DAY_MS):]
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


_TS, _AMOUNT, _QUANTITY = itemgetter(0), itemgetter(2), itemgetter(3)
_COUNTRY = itemgetter(8)
# PurchaseFact fields: show_id 1, payment_method 4, card 5, ip 9, device 10, country 8
_DIVERSITY_FIELDS = tuple(itemgetter(i) for i in (1, 4, 5, 9, 10, 8))
