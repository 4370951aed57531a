"""Plain, JSON-serialisable state for the feature processors (one value per Faust table key).

Every collection is bounded twice: it expires by event time (relative to the key's
watermark, the largest event time seen) and it is capped in length, so memory stays flat
however long the simulated clock runs. Expiry keeps ``SLACK_MS`` beyond each window so an
event arriving within the allowed lateness still sees the rows it needs; queries filter by
timestamp, so expiry only ever frees memory and never changes a feature value.

``to_dict()`` gives compact JSON-ready values (rows as lists); ``from_dict()`` reverses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from processors.entity_state import (  # noqa: F401  (shared-entity states live there)
    ENTITY_RETENTION_MS,
    ENTITY_WALLETS_CAP,
    EntityState,
    ShowState,
)
from processors.ring import cap_dict, drop_rows_until, drop_ts_until, prune_dict
from processors.timeutil import DAY_MS, HOUR_MS, MINUTE_MS

SLACK_MS = HOUR_MS
PRUNE_EVERY_MS = 10 * MINUTE_MS

PURCHASE_RETENTION_MS = 7 * DAY_MS
PURCHASES_CAP = 200
GEO_RETENTION_MS = DAY_MS
GEO_CAP = 32
AUTH_RETENTION_MS = HOUR_MS
AUTH_CAP = 64
DEVICE_RETENTION_MS = 90 * DAY_MS
DEVICES_CAP = 16
HOLDINGS_CAP = 256
TOKEN_RETENTION_MS = 30 * DAY_MS
TOKENS_CAP = 256
RESALES_CAP = 128
WASH_CAP = 32
APPLIED_CAP = 64  # record ids a wallet remembers, to apply a redelivered record once


class PurchaseFact(NamedTuple):
    ts_ms: int
    show_id: str
    amount_minor: int
    quantity: int
    payment_method: str
    card: str | None
    lat: float | None
    lon: float | None
    country: str | None
    ip: str
    device: str | None
    channel: str


class GeoPoint(NamedTuple):
    ts_ms: int
    lat: float
    lon: float
    country: str


class ResaleFact(NamedTuple):
    """A token this wallet sold or gave away: when, how long it held it, mint to sale (-1 unknown)."""

    ts_ms: int
    hold_ms: int
    flip_ms: int


class Holding(NamedTuple):
    acquired_ms: int
    price_minor: int  # -1 when unknown (chain transfers carry wei, not minor units)


def _rows(ring: list) -> list[list]:
    return [list(r) for r in ring]


@dataclass(slots=True)
class WalletState:
    """Everything Sentinel remembers about one wallet."""

    address: str = ""
    watermark_ms: int = 0
    pruned_ms: int = 0
    first_seen_ms: int | None = None
    purchases: list[PurchaseFact] = field(default_factory=list)
    purchases_total: int = 0
    amount_total_minor: int = 0
    last_purchase_ms: int | None = None
    geo_points: list[GeoPoint] = field(default_factory=list)
    failed_logins: list[int] = field(default_factory=list)
    mfa_failures: list[int] = field(default_factory=list)
    login_ok_ms: int | None = None
    fails_before_login_ok: int = 0
    password_changed_ms: int | None = None
    email_changed_ms: int | None = None
    devices: dict[str, int] = field(default_factory=dict)
    holdings: dict[str, Holding] = field(default_factory=dict)
    mints: dict[str, int] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    resales: list[ResaleFact] = field(default_factory=list)
    wash_cycles: list[int] = field(default_factory=list)
    # Per input stream ("purchase", "auth", "transfer"): the largest event time seen. Each
    # stream's lateness is judged against its own mark, since topics are consumed
    # independently and one may run ahead of another.
    marks: dict[str, int] = field(default_factory=dict)
    # Ids of the latest records applied (capped): a redelivered record is applied once.
    applied: list[str] = field(default_factory=list)

    def observe(self, ts_ms: int, stream: str = "purchase") -> None:
        """Advance the watermarks and first-seen time; prune now and then."""
        if ts_ms > self.watermark_ms:
            self.watermark_ms = ts_ms
        if ts_ms > self.marks.get(stream, 0):
            self.marks[stream] = ts_ms
        if self.first_seen_ms is None or ts_ms < self.first_seen_ms:
            self.first_seen_ms = ts_ms
        if self.watermark_ms - self.pruned_ms >= PRUNE_EVERY_MS:
            self.prune()

    def mark(self, stream: str) -> int:
        return self.marks.get(stream, 0)

    def first_time(self, record_id: str) -> bool:
        """Remember ``record_id``; False when it was applied already (a redelivery)."""
        if record_id in self.applied:
            return False
        self.applied.append(record_id)
        if len(self.applied) > APPLIED_CAP:
            del self.applied[0]
        return True

    def prune(self) -> None:
        # The slowest stream's mark: never drop rows a lagging stream still needs.
        wm = min(self.marks.values()) if self.marks else self.watermark_ms
        drop_rows_until(self.purchases, wm - PURCHASE_RETENTION_MS - SLACK_MS)
        drop_rows_until(self.geo_points, wm - GEO_RETENTION_MS - SLACK_MS)
        drop_ts_until(self.failed_logins, wm - AUTH_RETENTION_MS - SLACK_MS)
        drop_ts_until(self.mfa_failures, wm - AUTH_RETENTION_MS - SLACK_MS)
        drop_rows_until(self.resales, wm - TOKEN_RETENTION_MS - SLACK_MS)
        drop_ts_until(self.wash_cycles, wm - TOKEN_RETENTION_MS - SLACK_MS)
        prune_dict(self.devices, wm - DEVICE_RETENTION_MS - SLACK_MS, DEVICES_CAP)
        prune_dict(self.mints, wm - TOKEN_RETENTION_MS - SLACK_MS, TOKENS_CAP)
        prune_dict(self.sent, wm - TOKEN_RETENTION_MS - SLACK_MS, TOKENS_CAP)
        cap_dict(self.holdings, HOLDINGS_CAP, _acquired)
        self.pruned_ms = wm

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "wm": self.watermark_ms,
            "pruned": self.pruned_ms,
            "first": self.first_seen_ms,
            "p": _rows(self.purchases),
            "p_total": self.purchases_total,
            "amount_total": self.amount_total_minor,
            "last_p": self.last_purchase_ms,
            "geo": _rows(self.geo_points),
            "failed": list(self.failed_logins),
            "mfa_failed": list(self.mfa_failures),
            "login_ok": self.login_ok_ms,
            "fails_before_ok": self.fails_before_login_ok,
            "pw_changed": self.password_changed_ms,
            "email_changed": self.email_changed_ms,
            "devices": dict(self.devices),
            "holdings": {k: list(v) for k, v in self.holdings.items()},
            "mints": dict(self.mints),
            "sent": dict(self.sent),
            "resales": _rows(self.resales),
            "wash": list(self.wash_cycles),
            "marks": dict(self.marks),
            "applied": list(self.applied),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WalletState:
        return cls(
            address=d["address"],
            watermark_ms=d["wm"],
            pruned_ms=d["pruned"],
            first_seen_ms=d["first"],
            purchases=[PurchaseFact(*r) for r in d["p"]],
            purchases_total=d["p_total"],
            amount_total_minor=d["amount_total"],
            last_purchase_ms=d["last_p"],
            geo_points=[GeoPoint(*r) for r in d["geo"]],
            failed_logins=list(d["failed"]),
            mfa_failures=list(d["mfa_failed"]),
            login_ok_ms=d["login_ok"],
            fails_before_login_ok=d["fails_before_ok"],
            password_changed_ms=d["pw_changed"],
            email_changed_ms=d["email_changed"],
            devices=dict(d["devices"]),
            holdings={k: Holding(*v) for k, v in d["holdings"].items()},
            mints=dict(d["mints"]),
            sent=dict(d["sent"]),
            resales=[ResaleFact(*r) for r in d["resales"]],
            wash_cycles=list(d["wash"]),
            marks=dict(d.get("marks", {})),
            applied=list(d.get("applied", [])),
        )


def _acquired(h: Holding) -> int:
    return h.acquired_ms
