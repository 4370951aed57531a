"""Crowd states: purchases of many wallets under one aggregate key, queried AS OF a time.

Same contract as ``processors.entity_state`` (which the live replica follows): states keep
time-stamped rows, are applied once per purchase id in any order, and answer questions about
rows strictly BEFORE the asking purchase's event time, so a replica that has read ahead gives
the same answers as an in-order replay. Rows live 70 minutes (the longest recent window is 1 h)
and are capped; the normal pace is kept as purchases per hour over 25 hours.

The store is native code (``processors/native/src/lib.rs``, built by ``make install``): every
purchase is applied to six keys on every worker, which in Python was a sixth of a purchase's
CPU. This module holds its limits; ``processors.crowd`` says what the keys and rows are.

    store = crowd_store()
    store.apply_order(order, read)  # once per id: the row (ts, wallet, card or "", small)
    store.values(read, wallet, ts, card)  # CROWD_FEATURES from the rows before ts
"""

from __future__ import annotations

from processors._native import CrowdStore
from processors.records import Order
from processors.timeutil import DAY_MS, HOUR_MS, MINUTE_MS

__all__ = ["CrowdStore", "Row", "crowd_store"]

ROWS_RETENTION_MS = 70 * MINUTE_MS
ROWS_CAP = 2048  # per key; the wallet counts saturate long before a hot key reaches it
HOURS_KEPT = 26
PRUNE_EVERY_MS = 5 * MINUTE_MS
SEEN_RETENTION_MS = 2 * HOUR_MS
IDLE_MS = DAY_MS + 2 * HOUR_MS  # a key idle this long holds nothing a query needs
RECENT_MS = 10 * MINUTE_MS  # "now" in the rates and the 10-minute wallet counts
PACE_HOURS = 24  # a key's normal pace: its purchases per 10 min over this many whole hours
WALLETS_CAP = 64  # distinct-wallet and card counts saturate here
SMALL_AMOUNT_REF_MINOR = 500  # a card-testing probe: 5.00 USD or less (FeatureConfig's value)

Row = tuple[int, str, str, int]  # (ts, wallet, card or "", 1 if a small amount else 0)


def crowd_store() -> CrowdStore:
    """An empty store with the limits above."""
    return CrowdStore(rows_retention_ms=ROWS_RETENTION_MS, rows_cap=ROWS_CAP,
                      hours_kept=HOURS_KEPT, prune_every_ms=PRUNE_EVERY_MS,
                      seen_retention_ms=SEEN_RETENTION_MS, idle_ms=IDLE_MS, hour_ms=HOUR_MS,
                      recent_ms=RECENT_MS, wallets_cap=WALLETS_CAP, pace_hours=PACE_HOURS,
                      small_amount_minor=SMALL_AMOUNT_REF_MINOR, order_fields=Order._fields)
