"""Per-wallet state for the feature processors (one value per Faust table key), a msgspec struct.

Every collection is bounded twice: it expires by event time (relative to the key's
watermark, the largest event time seen) and it is capped in length, so memory stays flat
however long the simulated clock runs. Expiry keeps ``SLACK_MS`` beyond each window so an
event arriving within the allowed lateness still sees the rows it needs; queries filter by
timestamp, so expiry only ever frees memory and never changes a feature value. A whole
wallet idle past its longest window is summarised or deleted by ``processors/expiry.py``.
The updates (a purchase, an auth event or a chain transfer applied, ``first_time``,
``observe``, ``prune``) run in native code, ``WALLET_UPDATES``
(``processors/native/src/updates.rs``), with the limits and auth kinds below.

``WalletState`` is ``array_like`` (encoded as an array, fields in declaration order) and
tagged; ``processors/statecodec.py`` puts a format version in front. To add a field, append
it at the END with a default: older values then decode with the default, and older readers
ignore it. Renaming, reordering or retyping a field needs a new format version.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec

from processors._native import WalletUpdates
from processors.records import Order, Transfer
from processors.timeutil import DAY_MS, HOUR_MS

SLACK_MS = HOUR_MS
PRUNE_EVERY_MS = HOUR_MS  # expiry only frees memory (queries filter by time)

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
LOGIN_WINDOW_MS = HOUR_MS  # the failed logins counted before a successful one

# Auth event kinds a wallet records (besides PASSWORD_CHANGED and EMAIL_CHANGED)
FAILED_LOGIN_KINDS = frozenset({"LOGIN_FAILED", "ADMIN_LOGIN_FAILED"})
MFA_FAILED_KINDS = frozenset({"MFA_FAILED", "ADMIN_MFA_FAILED"})
LOGIN_OK_KINDS = frozenset({"LOGIN_OK", "ADMIN_LOGIN"})


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


class FraudMark(NamedTuple):
    """A confirmed-fraud mark on a wallet (a chargeback, a review outcome): kept for good."""

    ts_ms: int
    kind: str
    reference: str  # e.g. the purchase or case it came from


WALLET_TAG = 1


class WalletState(msgspec.Struct, array_like=True, gc=False, tag=WALLET_TAG):
    """Everything Sentinel remembers about one wallet. Not tracked by the cycle collector
    (a state holds no reference cycle), which keeps collections cheap with a million wallets."""

    address: str = ""
    watermark_ms: int = 0
    pruned_ms: int = 0
    first_seen_ms: int | None = None
    purchases: list[PurchaseFact] = []
    purchases_total: int = 0
    amount_total_minor: int = 0
    last_purchase_ms: int | None = None
    geo_points: list[GeoPoint] = []
    failed_logins: list[int] = []
    mfa_failures: list[int] = []
    login_ok_ms: int | None = None
    fails_before_login_ok: int = 0
    password_changed_ms: int | None = None
    email_changed_ms: int | None = None
    devices: dict[str, int] = {}
    holdings: dict[str, Holding] = {}
    mints: dict[str, int] = {}
    sent: dict[str, int] = {}
    resales: list[ResaleFact] = []
    wash_cycles: list[int] = []
    # Per input stream ("purchase", "auth", "transfer"): the largest event time seen. Each
    # stream's lateness is judged against its own mark, since topics are consumed
    # independently and one may run ahead of another.
    marks: dict[str, int] = {}
    # Ids of the latest records applied (capped): a redelivered record is applied once.
    applied: list[str] = []
    # Confirmed fraud (chargebacks, review outcomes): survives summarising, never expires.
    fraud_marks: list[FraudMark] = []

    def observe(self, ts_ms: int, stream: str = "purchase") -> None:
        """Advance the watermarks and first-seen time; prune now and then (native:
        ``WALLET_UPDATES.observe``, which the apply paths call directly)."""
        WALLET_UPDATES.observe(self, ts_ms, stream)

    def mark(self, stream: str) -> int:
        return self.marks.get(stream, 0)

    def first_time(self, record_id: str) -> bool:
        """Remember ``record_id``; False when it was applied already (a redelivery)."""
        return WALLET_UPDATES.first_time(self, record_id)

    def prune(self) -> None:
        """Expire rows by event time, by the slowest stream's mark (never drop rows a lagging
        stream still needs); holdings only by their cap."""
        WALLET_UPDATES.prune(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins (for tests, logs and comparisons)."""
        return msgspec.to_builtins(self)

    def forget(self) -> None:
        """Back to a new wallet in place (expiry deleted it): every field but the address."""
        fresh = WalletState(address=self.address)
        for name in self.__struct_fields__:
            setattr(self, name, getattr(fresh, name))


# Applying a purchase, an auth event or a chain transfer, and the state's first_time /
# observe / prune, in native code (processors/native/src/updates.rs), with the limits and
# kinds above, the records' layouts and the rows' classes.
WALLET_UPDATES = WalletUpdates(
    purchases_cap=PURCHASES_CAP, geo_cap=GEO_CAP, devices_cap=DEVICES_CAP, tokens_cap=TOKENS_CAP,
    holdings_cap=HOLDINGS_CAP, wash_cap=WASH_CAP, applied_cap=APPLIED_CAP, auth_cap=AUTH_CAP,
    resales_cap=RESALES_CAP, login_window_ms=LOGIN_WINDOW_MS, slack_ms=SLACK_MS,
    prune_every_ms=PRUNE_EVERY_MS, purchase_retention_ms=PURCHASE_RETENTION_MS,
    geo_retention_ms=GEO_RETENTION_MS, auth_retention_ms=AUTH_RETENTION_MS,
    device_retention_ms=DEVICE_RETENTION_MS, token_retention_ms=TOKEN_RETENTION_MS,
    failed_login_kinds=FAILED_LOGIN_KINDS, mfa_failed_kinds=MFA_FAILED_KINDS,
    login_ok_kinds=LOGIN_OK_KINDS, order_fields=Order._fields, transfer_fields=Transfer._fields,
    purchase_fact=PurchaseFact, geo_point=GeoPoint, holding=Holding, resale_fact=ResaleFact,
    wallet_state=WalletState,
)  # fmt: skip
