"""Per-purchase features from state read BEFORE the purchase is applied (pure, read-only).

Conventions (also in README.md):
- windows are half-open in event time: "1 h" means rows with ``t - 1 h < ts <= t``, where
  ``t`` is the purchase's ``occurred_at``; rows later than ``t`` (out-of-order arrivals) are
  not counted, so a within-lateness event gets the value an in-order run would give;
- velocity, amount and count features exclude the current purchase; distinct-value counts
  (``*_24h`` diversity, ``wallets_per_*``, ``linked_wallets``) include it;
- ``MISSING = -1.0`` marks a value that cannot be computed (no history, field absent, not
  applicable); 0/1 flags are -1 when their input is absent.

``processors/signals.py`` lists where each feature is computed; ``order_features`` stacks them.
"""

from __future__ import annotations

import functools

from processors._native import WalletFeatures
from processors.apply import DEFAULT_CONFIG, FeatureConfig, Record, check_lateness
from processors.crowd import CROWD_FEATURES, NO_CROWDS, CrowdRead, CrowdStore
from processors.crowd import crowd_read as read_crowd
from processors.entity_state import EntityStore, entity_store
from processors.marks import MARK_FEATURES, MarkStore, order_mark_row
from processors.records import Order, read_order
from processors.signals import DEVICE_MEMORY_MS, TOKEN_WINDOW_MS
from processors.state import (
    PURCHASE_RETENTION_MS,
    GeoPoint,
    PurchaseFact,
    ResaleFact,
    WalletState,
)
from processors.timeutil import DAY_MS, EARTH_RADIUS_KM, HOUR_MS, MINUTE_MS, SECOND_MS

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
    crowd_read: CrowdRead | None = None,
    marks: MarkStore | None = None,
) -> tuple[float, ...]:
    """``purchase_features`` as a row in ``FEATURE_NAMES`` order, for an order already read
    (``read_order``) from ``purchase`` and admitted (``check_lateness``): what the batch paths
    stack. ``crowd_read``: ``processors.crowd.crowd_read(purchase)`` if already read.

    One native call (``WalletFeatures.row``) makes the row: the wallet's and the order's
    values, the entity store's in between, up to ``email_verified``; then the crowd store's
    (``CrowdStore.values`` of the read, the order's wallet and card: ``crowd_values``; no
    store reads as an empty one) and the marks' (``order_mark_row``)."""
    entities = _NO_ENTITIES if entities is None else entities
    reader = row_reader(config)
    crowd = NO_CROWDS if crowd is None else crowd
    read = read_crowd(purchase) if crowd_read is None else crowd_read
    mark_row = order_mark_row(purchase, marks, entities, o)
    return reader.row(o, wallet, entities, crowd, read, mark_row)


def wallet_features(config: FeatureConfig = DEFAULT_CONFIG) -> WalletFeatures:
    """The native reader of a purchase's wallet and order features under ``config``, with the
    windows and layouts it must agree on."""
    return WalletFeatures(
        second_ms=SECOND_MS, minute_ms=MINUTE_MS, hour_ms=HOUR_MS, day_ms=DAY_MS,
        purchase_retention_ms=PURCHASE_RETENTION_MS, duplicate_window_ms=DUPLICATE_WINDOW_MS,
        device_memory_ms=DEVICE_MEMORY_MS, token_window_ms=TOKEN_WINDOW_MS,
        earth_radius_km=EARTH_RADIUS_KM, small_amount_minor=config.small_amount_minor,
        impossible_km=config.impossible_km, impossible_within_ms=config.impossible_within_ms,
        min_travel_ms=config.min_travel_ms, order_fields=Order._fields,
        purchase_fact_fields=PurchaseFact._fields, geo_point_fields=GeoPoint._fields,
        resale_fact_fields=ResaleFact._fields, wallet_state=WalletState,
    )  # fmt: skip


def row_reader(config: FeatureConfig) -> WalletFeatures:
    """The native reader of rows under ``config``, made once per config."""
    return _DEFAULT_READER if config is DEFAULT_CONFIG else _reader(config)


_NO_ENTITIES = entity_store()  # never applied to: every IP, device, card and show unseen
_DEFAULT_READER = wallet_features()
_reader = functools.cache(wallet_features)  # other configs (FeatureConfig is frozen)
