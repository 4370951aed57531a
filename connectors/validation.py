"""The edge models: webhook JSON and client dicts become typed records here, once.

Pydantic v2 models mirror ``schemas/purchase.avsc``, ``auth_event.avsc`` and ``label.avsc`` and
reject what the schema (or common sense about the field) would reject, naming each bad field.
Wallets are normalised to lower case, currencies and countries to upper case, IPs to their
canonical text (``canonical_ip``: an IPv4-mapped IPv6 address becomes IPv4, zone ids are
refused; ``limit_key`` counts IPv6 per /64). Ids and texts refuse control characters (NUL,
newlines, C1) and bidi controls. This is the one canonicalisation place: the gateway, the
producer client and the blocklists use it. Timestamps are RFC 3339 strings with an offset or integer epoch milliseconds,
never naive. The event time (``occurred_at``) is bounded against the clock of the edge
(``EventTimeBounds``): at most ``max_future`` ahead (5 min by default) and no older than the
retention of the record's topic; other timestamps at most 24 h ahead.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
)

from connectors.base import FieldError, RecordKind, ValidationFailed
from connectors.iso4217 import CURRENCIES
from infra.topics import AUTH_EVENTS, LABELS, PURCHASES
from processors.money import default_rates

MAX_FUTURE = timedelta(hours=24)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class EventTimeBounds:
    """How far an event time may be from the edge's clock: ``max_future`` ahead, ``max_age``
    behind (None: the retention of the record's topic)."""

    max_future: timedelta = timedelta(minutes=5)
    max_age: timedelta | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> EventTimeBounds:
        stream = settings.stream
        age = timedelta(milliseconds=stream.max_event_age_ms) if stream.max_event_age_ms else None
        return cls(timedelta(milliseconds=stream.max_future_skew_ms), age)


DEFAULT_BOUNDS = EventTimeBounds()


def _millis_to_datetime(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        return value
    try:
        return EPOCH + timedelta(milliseconds=value)
    except OverflowError:
        raise ValueError("epoch milliseconds out of range") from None


def _not_in_future(value: datetime, info: ValidationInfo) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp needs a UTC offset (e.g. 2026-01-01T12:00:00Z)")
    now = (info.context or {}).get("now") or datetime.now(UTC)
    if value - now > MAX_FUTURE:
        raise ValueError("timestamp is more than 24 h in the future")
    if value < EPOCH:
        raise ValueError("timestamp is before 1970-01-01")
    return value.astimezone(UTC)


def _event_time(value: datetime, info: ValidationInfo) -> datetime:
    """An event time within ``EventTimeBounds`` of the edge's clock (``parse`` puts both in
    the validation context)."""
    value = _not_in_future(value, info)
    context = info.context or {}
    now = context.get("now") or datetime.now(UTC)
    bounds: EventTimeBounds = context.get("bounds", DEFAULT_BOUNDS)
    if value - now > bounds.max_future:
        ahead = int(bounds.max_future.total_seconds())
        raise ValueError(f"event time is more than {ahead} s ahead of the gateway's clock")
    max_age = context.get("max_age")
    if max_age is not None and now - value > max_age:
        raise ValueError(f"event time is more than {max_age.days} days old (the topic's retention)")
    return value


WALLET = re.compile(r"0[xX][0-9a-fA-F]{40}")


def _wallet(value: str) -> str:
    if not WALLET.fullmatch(value):
        raise ValueError("malformed wallet address (expected 0x followed by 40 hex digits)")
    return value.lower()


def _currency(value: str) -> str:
    code = value.upper()
    if code not in CURRENCIES:
        raise ValueError(f"unknown currency {value[:8]!r} (expected an ISO 4217 code)")
    rates = default_rates()
    if code not in rates.rates:  # features convert every amount: unpriceable is unscorable
        raise ValueError(f"no exchange rate for {code} in rates table {rates.version}")
    return code


# Bidirectional formatting characters (Trojan Source, CVE-2021-42574): they make an id read
# differently from what it is.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f" + "".join(map(chr, range(0x202A, 0x202F)))
                          + "".join(map(chr, range(0x2066, 0x206A))))  # fmt: skip


def _printable(value: str) -> str:
    """Refuse control characters (C0, DEL, C1: NUL, newlines, tabs...) and bidi controls."""
    for ch in value:
        if ch in BIDI_CONTROLS or unicodedata.category(ch) == "Cc":
            raise ValueError(f"control character U+{ord(ch):04X} not allowed")
    return value


def canonical_ip(value: str) -> str:
    """The one canonical text of an IP: compressed lower-case, an IPv4-mapped IPv6 address as
    its IPv4 address; a zone id (``fe80::1%eth0``) is refused (``ValueError``)."""
    addr = ipaddress.ip_address(value)
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.scope_id is not None:
            raise ValueError("IPv6 zone ids (%...) are not allowed")
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
    return str(addr)


def limit_key(ip: str | None) -> str:
    """What per-IP limits count by: an IPv4 address, or the /64 of an IPv6 one (a client
    typically holds a whole /64 and could rotate through it); "unknown" when absent."""
    try:
        addr = ipaddress.ip_address(canonical_ip(ip or ""))
    except ValueError:
        return "unknown"
    if isinstance(addr, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return str(addr)


def _ip(value: str) -> str:
    if "%" in value:
        raise ValueError("IPv6 zone ids (%...) are not allowed")
    try:
        return canonical_ip(value)
    except ValueError:
        raise ValueError("not an IPv4 or IPv6 address") from None


Timestamp = Annotated[
    datetime, BeforeValidator(_millis_to_datetime), AfterValidator(_not_in_future)
]
EventTime = Annotated[
    datetime, BeforeValidator(_millis_to_datetime), AfterValidator(_event_time)
]
Wallet = Annotated[StrictStr, AfterValidator(_wallet)]
Id = Annotated[StrictStr, Field(min_length=1, max_length=128), AfterValidator(_printable)]
Text = Annotated[StrictStr, Field(max_length=512), AfterValidator(_printable)]
Country = Annotated[StrictStr, Field(pattern=r"^[A-Za-z]{2}$"), AfterValidator(str.upper)]
Currency = Annotated[StrictStr, Field(min_length=3, max_length=3), AfterValidator(_currency)]
Ip = Annotated[StrictStr, Field(max_length=64), AfterValidator(_ip)]
Domain = Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9.-]{1,253}$"), AfterValidator(str.lower)]


def _ms(value: datetime | None) -> int | None:
    return None if value is None else (value - EPOCH) // timedelta(milliseconds=1)


class EdgeModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_avro(self, now: datetime | None = None) -> dict[str, Any]:
        """The Avro record: timestamps as epoch milliseconds, nested models as dicts."""
        out = self.model_dump()
        for name, value in out.items():
            if isinstance(value, datetime):
                out[name] = _ms(value)
        return out


class Geo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lat: Annotated[StrictFloat | StrictInt, Field(ge=-90, le=90), AfterValidator(float)]
    lon: Annotated[StrictFloat | StrictInt, Field(ge=-180, le=180), AfterValidator(float)]
    country: Country


class PurchaseIn(EdgeModel):
    """A ticket purchase (``sentinel.purchases.v1``). Money is integer minor units."""

    purchase_id: Id
    occurred_at: EventTime
    wallet: Wallet
    user_id: Id
    organizer_id: Id
    show_id: Id
    ticket_id: Id
    quantity: Annotated[StrictInt, Field(ge=1, le=100)]
    unit_price_minor: Annotated[StrictInt, Field(ge=0, le=2**53)]
    currency: Currency
    channel: Literal["PRIMARY", "RESALE"]
    seller_wallet: Wallet | None = None
    payment_method: Literal["CARD", "CRYPTO", "APPLE_PAY", "GOOGLE_PAY", "PAYPAL", "BANK_TRANSFER"]
    card_fingerprint: Text | None = None
    card_country: Country | None = None
    card_bin: Annotated[StrictStr, Field(pattern=r"^[0-9]{6,8}$")] | None = None
    email_domain: Domain | None = None
    ip: Ip
    geo: Geo | None = None
    device_id: Text | None = None
    user_agent: Text | None = None
    account_created_at: Timestamp | None = None
    sale_opens_at: Timestamp | None = None
    mfa_enabled: StrictBool = False
    phone_verified: StrictBool = False
    email_verified: StrictBool = False
    ingested_at: Timestamp | None = Field(None, description="ignored: the edge sets it")

    def to_avro(self, now: datetime | None = None) -> dict[str, Any]:
        out = super().to_avro(now)
        out["ingested_at"] = _ms(now or datetime.now(UTC))
        return out


class AuthEventIn(EdgeModel):
    """A login, MFA or account event (``sentinel.auth-events.v1``)."""

    event_id: Id
    occurred_at: EventTime
    kind: Literal[
        "LOGIN_OK", "LOGIN_FAILED", "MFA_OK", "MFA_FAILED", "PASSWORD_CHANGED",
        "EMAIL_CHANGED", "ADMIN_LOGIN", "ADMIN_LOGIN_FAILED", "ADMIN_MFA_FAILED", "LOGOUT",
    ]  # fmt: skip
    user_id: Id
    wallet: Wallet | None = None
    ip: Ip
    geo: Geo | None = None
    device_id: Text | None = None
    user_agent: Text | None = None


class LabelIn(EdgeModel):
    """Ground truth for a purchase (``sentinel.labels.v1``): chargeback or review outcome."""

    purchase_id: Id
    occurred_at: EventTime
    is_fraud: StrictBool
    source: Literal["CHARGEBACK", "MANUAL_REVIEW", "SIMULATOR"]
    pattern: Text | None = None
    reviewer: Id | None = None  # MANUAL_REVIEW: who decided (a console user name)


PURCHASE = RecordKind(
    "purchases", PURCHASES, PurchaseIn,
    key=lambda r: r.wallet,
    record_id=lambda r: r.purchase_id,
    natural_key=lambda r: r.purchase_id,
)  # fmt: skip
AUTH_EVENT = RecordKind(
    "auth-events", AUTH_EVENTS, AuthEventIn,
    key=lambda r: r.wallet or r.user_id,
    record_id=lambda r: r.event_id,
    natural_key=lambda r: r.event_id,
)  # fmt: skip
LABEL = RecordKind(
    "labels", LABELS, LabelIn,
    key=lambda r: r.purchase_id,
    record_id=lambda r: r.purchase_id,
    natural_key=lambda r: f"{r.purchase_id}:{r.source}",
)  # fmt: skip
KINDS: dict[str, RecordKind] = {k.name: k for k in (PURCHASE, AUTH_EVENT, LABEL)}


def field_errors(exc: ValidationError) -> list[FieldError]:
    """Pydantic's errors as ``FieldError``s: dotted field paths, ``body`` for the whole."""
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in err["loc"]) or "body"
        message = str(err["msg"]).removeprefix("Value error, ")
        out.append(FieldError(field, message, str(err["type"])))
    return out


def parse(
    kind: RecordKind,
    data: bytes | str | dict | BaseModel,
    now: datetime | None = None,
    bounds: EventTimeBounds = DEFAULT_BOUNDS,
):
    """A validated ``kind.model`` from JSON bytes, a dict or a model; else ``ValidationFailed``.

    ``now`` (default: the clock) and ``bounds`` fix how far the event time may be from now."""
    if isinstance(data, kind.model):
        return data
    if isinstance(data, BaseModel):
        data = data.model_dump()
    max_age = bounds.max_age or timedelta(milliseconds=kind.spec.retention_ms)
    context = {"now": now or datetime.now(UTC), "bounds": bounds, "max_age": max_age}
    try:
        if isinstance(data, bytes | str):
            return kind.model.model_validate_json(data, context=context)
        return kind.model.model_validate(data, context=context)
    except ValidationError as exc:
        raise ValidationFailed(field_errors(exc)) from None
