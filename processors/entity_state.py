"""State shared between wallets — an IP, a device, a card, a show — queried AS OF an event time.

Every worker keeps its own complete copy of these states (``streams/entity_replica.py``
applies every purchase of every partition to an ``EntityStore``), so a worker can be ahead of
the purchase it scores: it may already hold purchases with later event times. The queries
therefore look only at rows strictly BEFORE the purchase's event time ``t``, and the states
keep time-stamped rows, not running totals, so a query as of ``t`` gives the same answer
whatever was applied after ``t``. Replay and training apply the same rows in event-time
order (``processors.features.FeatureEngine``) and ask the same questions: the same answers.

The store is native code (``processors/native/src/lib.rs``, ``EntityStore``): every worker
applies every purchase to it, and its queries give the purchase's entity and show features in
one call each. This module holds its limits and builds it (``entity_store()``); every path
that applies a purchase applies it to this store and the crowd store (``processors.crowd``)
in one call, ``apply_stores(entities, crowds, order, crowd_read)``: the order to this store
as ``entities.apply_order(order)``, then to the crowd store as ``crowds.apply_order(order,
crowd_read)``.

Bounded: rows expire by event time (window + ``SLACK_MS``) and are capped; states idle past
their longest window are dropped by ``EntityStore.sweep``. Expiry is measured from the
store's *floor*, the earliest event time still to be asked about: in replay that is the
latest purchase (queries come in order); live, the scorer raises it as it goes
(``EntityStore.advance_floor``), so rows a lagging query still needs are never dropped by a
replica that has read ahead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from processors._native import EntityStore, apply_stores
from processors.timeutil import DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS

__all__ = ["EntityStore", "apply_stores", "entity_keys", "entity_store"]

SLACK_MS = HOUR_MS
ENTITY_RETENTION_MS = DAY_MS
ENTITY_ROWS_CAP = 512  # (ts, wallet) sightings kept per IP, device or card
ENTITY_WALLETS_CAP = 64  # wallets_per_* and linked_wallets saturate here
SHOW_RETENTION_MS = 7 * DAY_MS
SHOW_PRICES_CAP = 51  # the median is over the latest 51 prices before the purchase
# Rows kept per channel: room for rows later than a query. A worker's entity replica applies
# other partitions' sales ahead of a partition it scores behind them (days, on sparse traffic),
# and a query needs its latest SHOW_PRICES_CAP prices before its own time. At 256 a show's
# later sales crowded those out (bench runs under load: `price_deviation` missing where replay
# had one). ~100 bytes a row: at most ~400 KB per show and channel pair.
SHOW_PRICE_ROWS_CAP = 2048
POPULARITY_WINDOW_MS = HOUR_MS
SHOW_SALES_CAP = 50_000  # sale timestamps kept for popularity (1 h + slack)
SHOW_TICKETS_CAP = 2048  # first primary sales remembered (mint-to-resale, markup)
# A ticket's first primary sale answers a resale up to 30 d later (the wallets' resale window,
# ``signals.TOKEN_WINDOW_MS``), whether or not its show was idle meanwhile: a show idle past its
# 7-day windows keeps those sales (the store's sweep). Before, a show's idle sweep forgot
# them, so a resale's answer depended on when the sweep ran (live and replay differed).
TICKET_RETENTION_MS = 30 * DAY_MS
PRUNE_EVERY_MS = 30 * MINUTE_MS
SEEN_RETENTION_MS = 2 * HOUR_MS  # a purchase id seen again within this is a redelivery
KINDS = ("ip", "device", "card", "show")

Record = Mapping[str, Any]


def entity_store() -> EntityStore:
    """An empty store with the limits above."""
    return EntityStore(
        entity_retention_ms=ENTITY_RETENTION_MS, slack_ms=SLACK_MS,
        entity_rows_cap=ENTITY_ROWS_CAP, entity_wallets_cap=ENTITY_WALLETS_CAP,
        show_retention_ms=SHOW_RETENTION_MS, show_prices_cap=SHOW_PRICES_CAP,
        show_price_rows_cap=SHOW_PRICE_ROWS_CAP, popularity_window_ms=POPULARITY_WINDOW_MS,
        show_sales_cap=SHOW_SALES_CAP, show_tickets_cap=SHOW_TICKETS_CAP,
        ticket_retention_ms=TICKET_RETENTION_MS, prune_every_ms=PRUNE_EVERY_MS,
        seen_retention_ms=SEEN_RETENTION_MS, sweep_every_ms=HOUR_MS, second_ms=SECOND_MS,
        minute_ms=MINUTE_MS, day_ms=DAY_MS)


def entity_keys(purchase: Record) -> list[tuple[str, str]]:
    """(kind, value) of the IP, device, card and show a purchase touches (when present)."""
    values = (purchase.get("ip"), purchase.get("device_id"), purchase.get("card_fingerprint"),
              purchase.get("show_id"))
    return [(kind, value) for kind, value in zip(KINDS, values, strict=True) if value]
