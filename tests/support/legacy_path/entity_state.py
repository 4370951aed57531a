"""State shared between wallets — an IP, a device, a card, a show — queried AS OF an event time.

Every worker keeps its own complete copy of these states (``streams/entity_replica.py``
applies every purchase of every partition to an ``EntityStore``), so a worker can be ahead of
the purchase it scores: it may already hold purchases with later event times. The queries
therefore look only at rows strictly BEFORE the purchase's event time ``t``, and the states
keep time-stamped rows, not running totals, so a query as of ``t`` gives the same answer
whatever was applied after ``t``. Replay and training apply the same rows in event-time
order (``processors.features.FeatureEngine``) and ask the same questions: the same answers.

Bounded: rows expire by event time (window + ``SLACK_MS``) and are capped; states idle past
their longest window are dropped by ``EntityStore.sweep``. Expiry is measured from the
store's *floor*, the earliest event time still to be asked about: in replay that is the
latest purchase (queries come in order); live, the scorer raises it as it goes
(``EntityStore.advance_floor``), so rows a lagging query still needs are never dropped by a
replica that has read ahead.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from processors.money import unit_price_ref
from processors.ring import cap_dict, drop_rows_until, drop_ts_until, insert_row, insert_ts
from processors.timeutil import DAY_MS, HOUR_MS, MINUTE_MS, to_ms

SLACK_MS = HOUR_MS
ENTITY_RETENTION_MS = DAY_MS
ENTITY_ROWS_CAP = 512  # (ts, wallet) sightings kept per IP, device or card
ENTITY_WALLETS_CAP = 64  # wallets_per_* and linked_wallets saturate here
SHOW_RETENTION_MS = 7 * DAY_MS
SHOW_PRICES_CAP = 51  # the median is over the latest 51 prices before the purchase
SHOW_PRICE_ROWS_CAP = 2048  # as processors.entity_state (rows kept per channel)
POPULARITY_WINDOW_MS = HOUR_MS
SHOW_SALES_CAP = 50_000  # sale timestamps kept for popularity (1 h + slack)
SHOW_TICKETS_CAP = 2048  # first primary sales remembered (mint-to-resale, markup)
PRUNE_EVERY_MS = 30 * MINUTE_MS
SEEN_RETENTION_MS = 2 * HOUR_MS  # a purchase id seen again within this is a redelivery
KINDS = ("ip", "device", "card", "show")

Record = Mapping[str, Any]

TICKET_RETENTION_MS = 30 * DAY_MS  # processors.entity_state (2026-12-05)


@dataclass(slots=True)
class EntityState:
    """An IP, device or card fingerprint: (ts, wallet) sightings, time-sorted, 25 h, capped."""

    rows: list[tuple[int, str]] = field(default_factory=list)
    watermark_ms: int = 0
    pruned_ms: int = 0

    def copy(self) -> EntityState:
        return EntityState(list(self.rows), self.watermark_ms, self.pruned_ms)

    def observe(self, wallet: str, ts_ms: int, floor_ms: int | None = None) -> None:
        """Add a sighting; rows older than the window before ``floor_ms`` (default: the
        latest sighting) are dropped now and then."""
        insert_row(self.rows, (ts_ms, wallet), ENTITY_ROWS_CAP)
        self.watermark_ms = max(self.watermark_ms, ts_ms)
        floor = self.watermark_ms if floor_ms is None else min(floor_ms, self.watermark_ms)
        if floor - self.pruned_ms >= PRUNE_EVERY_MS:
            drop_rows_until(self.rows, floor - ENTITY_RETENTION_MS - SLACK_MS)
            self.pruned_ms = floor

    def wallets_between(self, lo_excl: int, hi_excl: int) -> set[str]:
        """Wallets seen with ``lo_excl < ts < hi_excl``."""
        rows = self.rows
        i = bisect.bisect_right(rows, lo_excl, key=_ts)
        j = bisect.bisect_left(rows, hi_excl, key=_ts)
        return set(map(_WALLET, rows[i:j]))

    def to_dict(self) -> dict[str, Any]:
        return {"r": [list(r) for r in self.rows], "wm": self.watermark_ms, "pruned": self.pruned_ms}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EntityState:
        return cls([(r[0], r[1]) for r in d["r"]], d["wm"], d["pruned"])


@dataclass(slots=True)
class ShowState:
    """One show: unit prices per channel, sale times (popularity), its sale opening, and the
    first primary sale of recent tickets (mint-to-resale, resale markup). Rows are (ts, …)."""

    primary_prices: list[tuple[int, int]] = field(default_factory=list)
    resale_prices: list[tuple[int, int]] = field(default_factory=list)
    sales: list[int] = field(default_factory=list)
    sale_open_ms: int | None = None
    tickets: dict[str, tuple[int, int]] = field(default_factory=dict)
    watermark_ms: int = 0
    pruned_ms: int = 0

    def copy(self) -> ShowState:
        return ShowState(list(self.primary_prices), list(self.resale_prices), list(self.sales),
                         self.sale_open_ms, dict(self.tickets), self.watermark_ms, self.pruned_ms)

    def observe(self, purchase: Record, ts: int, floor_ms: int | None = None,
                price: int | None = None) -> None:
        price = unit_price_ref(purchase) if price is None else price
        primary = purchase["channel"] == "PRIMARY"
        ring = self.primary_prices if primary else self.resale_prices
        insert_row(ring, (ts, price), SHOW_PRICE_ROWS_CAP)
        insert_ts(self.sales, ts, SHOW_SALES_CAP)
        opens = to_ms(purchase.get("sale_opens_at"))
        if opens is not None:
            self.sale_open_ms = opens
        ticket = purchase["ticket_id"]
        if primary and (ticket not in self.tickets or self.tickets[ticket][0] > ts):
            self.tickets[ticket] = (ts, price)
            cap_dict(self.tickets, SHOW_TICKETS_CAP, _first)
        self.watermark_ms = max(self.watermark_ms, ts)
        floor = self.watermark_ms if floor_ms is None else min(floor_ms, self.watermark_ms)
        if floor - self.pruned_ms >= PRUNE_EVERY_MS:
            self.prune(floor)

    def prune(self, wm: int) -> None:
        drop_rows_until(self.primary_prices, wm - SHOW_RETENTION_MS - SLACK_MS)
        drop_rows_until(self.resale_prices, wm - SHOW_RETENTION_MS - SLACK_MS)
        drop_ts_until(self.sales, wm - POPULARITY_WINDOW_MS - SLACK_MS)
        self.pruned_ms = wm

    def prices_before(self, primary: bool, lo_excl: int, hi_excl: int) -> list[int]:
        """The latest ``SHOW_PRICES_CAP`` unit prices with ``lo_excl < ts < hi_excl``."""
        ring = self.primary_prices if primary else self.resale_prices
        i = bisect.bisect_right(ring, lo_excl, key=_ts)
        j = bisect.bisect_left(ring, hi_excl, key=_ts)
        return list(map(_PRICE, ring[max(i, j - SHOW_PRICES_CAP):j]))

    def sales_between(self, lo_excl: int, hi_excl: int) -> int:
        sales = self.sales
        return bisect.bisect_left(sales, hi_excl) - bisect.bisect_right(sales, lo_excl)

    def first_sale(self, ticket: str, before_ms: int) -> tuple[int, int] | None:
        """(ts, unit price) of the ticket's first primary sale, if before ``before_ms`` and
        no more than ``TICKET_RETENTION_MS`` before it (mirrored from ``processors``)."""
        sale = self.tickets.get(ticket)
        if sale is None or not before_ms - TICKET_RETENTION_MS < sale[0] < before_ms:
            return None
        return sale

    def to_dict(self) -> dict[str, Any]:
        return {"pp": [list(r) for r in self.primary_prices],
                "rp": [list(r) for r in self.resale_prices], "s": list(self.sales),
                "open": self.sale_open_ms, "t": {k: list(v) for k, v in self.tickets.items()},
                "wm": self.watermark_ms, "pruned": self.pruned_ms}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ShowState:
        return cls([(r[0], r[1]) for r in d["pp"]], [(r[0], r[1]) for r in d["rp"]],
                   list(d["s"]), d["open"], {k: (v[0], v[1]) for k, v in d["t"].items()},
                   d["wm"], d["pruned"])


def entity_keys(purchase: Record) -> list[tuple[str, str]]:
    """(kind, value) of the IP, device, card and show a purchase touches (when present)."""
    values = (purchase.get("ip"), purchase.get("device_id"), purchase.get("card_fingerprint"),
              purchase.get("show_id"))
    return [(kind, value) for kind, value in zip(KINDS, values, strict=True) if value]


class EntityStore:
    """Every IP, device, card and show state, applied once per purchase id, in any order."""

    def __init__(self) -> None:
        self.ips: dict[str, EntityState] = {}
        self.devices: dict[str, EntityState] = {}
        self.cards: dict[str, EntityState] = {}
        self.shows: dict[str, ShowState] = {}
        self.seen: dict[str, int] = {}  # purchase id -> event time, for redeliveries
        self.watermark_ms = 0
        self.floor_ms: int | None = None  # None: queries follow the latest purchase (replay)
        self._swept_ms = 0
        self._by_kind = {"ip": self.ips, "device": self.devices, "card": self.cards}

    def __len__(self) -> int:
        return len(self.ips) + len(self.devices) + len(self.cards) + len(self.shows)

    def apply(self, purchase: Record) -> None:
        ts = to_ms(purchase["occurred_at"])
        assert ts is not None
        if purchase["purchase_id"] in self.seen:
            return
        price = unit_price_ref(purchase)  # may raise (no rate): before anything changes
        self.seen[purchase["purchase_id"]] = ts
        self.watermark_ms = max(self.watermark_ms, ts)
        floor, wallet = self.floor(), purchase["wallet"]
        for kind, value in entity_keys(purchase):
            if kind == "show":
                show = self.shows.pop(value, None) or ShowState()
                self.shows[value] = show  # re-inserted: dicts stay in order of last use
                show.observe(purchase, ts, floor, price)
                continue
            states = self._by_kind[kind]
            state = states.pop(value, None) or EntityState()
            states[value] = state
            state.observe(wallet, ts, floor)
        if floor - self._swept_ms >= HOUR_MS:
            self.sweep()

    def floor(self) -> int:
        """The earliest event time still to be asked about (see the module doc)."""
        return self.watermark_ms if self.floor_ms is None else min(self.floor_ms, self.watermark_ms)

    def advance_floor(self, ts_ms: int) -> None:
        """Live: no query will come for an event time before ``ts_ms`` (minus the slack)."""
        self.floor_ms = ts_ms if self.floor_ms is None else max(self.floor_ms, ts_ms)

    def states(self, purchase: Record) -> tuple[EntityState | None, EntityState | None,
                                                EntityState | None, ShowState | None]:
        """The purchase's IP, device, card and show states (None when absent or unseen)."""
        get = dict.get
        return (get(self.ips, purchase.get("ip")), get(self.devices, purchase.get("device_id")),
                get(self.cards, purchase.get("card_fingerprint")),
                get(self.shows, purchase.get("show_id")))

    def sweep(self) -> None:
        """Drop states idle beyond their longest window before the floor. Dicts are kept in
        order of last use, so this stops at the first state still in use."""
        floor = self.floor()
        for states in (self.ips, self.devices, self.cards):
            _drop_idle(states, floor - ENTITY_RETENTION_MS - SLACK_MS)
        sweep_shows(self.shows, floor)  # mirrored from ``processors`` (first sales kept 30 d)
        cutoff = floor - SEEN_RETENTION_MS
        stale = []
        for key, ts in self.seen.items():  # in order of arrival
            if ts > cutoff:
                break
            stale.append(key)
        for key in stale:
            del self.seen[key]
        self._swept_ms = floor


def _drop_idle(states: dict, cutoff: int) -> None:
    idle = []
    for key, state in states.items():
        if state.watermark_ms > cutoff:
            break
        idle.append(key)
    for key in idle:
        del states[key]


_WALLET = _PRICE = itemgetter(1)


def _ts(row: tuple) -> int:
    return row[0]


def _first(v: tuple[int, int]) -> int:
    return v[0]


# processors.entity_state.sweep_shows as of 2026-12-05 (before the store became native code)
def sweep_shows(shows: dict, floor: int) -> None:
    """Shows idle past their 7-day windows drop their prices and sale times (outside every
    window from here: no answer changes) and keep the first primary sales still inside
    ``TICKET_RETENTION_MS``, so a resale weeks later gets the same answer whether or not
    this sweep ran; a show with none left goes."""
    idle = []
    for key, show in shows.items():  # in order of last use
        if show.watermark_ms > floor - SHOW_RETENTION_MS - SLACK_MS:
            break
        idle.append(key)
    for key in idle:
        show = shows[key]
        show.tickets = _tickets_after(show.tickets, floor - TICKET_RETENTION_MS - SLACK_MS)
        if not show.tickets:
            del shows[key]
            continue
        show.primary_prices.clear()
        show.resale_prices.clear()
        show.sales.clear()


def _tickets_after(tickets: dict[str, tuple[int, int]], cutoff: int) -> dict[str, tuple[int, int]]:
    """The first sales later than ``cutoff`` (the same dict when none is older)."""
    if all(sale[0] > cutoff for sale in tickets.values()):
        return tickets
    return {t: sale for t, sale in tickets.items() if sale[0] > cutoff}
