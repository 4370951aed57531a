"""Records read once: a purchase's times in ms and amounts in the reference currency; a chain
transfer's time, sides and token key.

Features, the wallet update and the entity store all read the same few fields of a record;
``read_order`` / ``read_transfer`` convert them once per record (``to_ms`` for each timestamp,
``money`` for the order's amount and its unit price, lower-cased addresses) instead of once
per reader. Field meanings are those of ``schemas/*.avsc``; amounts are reference-currency
minor units (``processors.money``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from processors.money import order_ref_minor
from processors.timeutil import to_ms


class Order(NamedTuple):
    ts: int  # occurred_at
    ingested_ms: int | None
    purchase_id: str
    wallet: str
    show_id: str
    ticket_id: str
    channel: str
    quantity: int
    amount: int  # unit price x quantity, in reference minor units
    unit: int  # one ticket, in reference minor units
    payment_method: str
    card: str | None
    ip: str
    device: str | None
    geo: bool  # the record carries a geo point
    lat: float | None
    lon: float | None
    country: str | None
    sale_opens_ms: int | None
    account_created_ms: int | None
    mfa_enabled: Any
    phone_verified: Any
    email_verified: Any


def read_order(p: Mapping[str, Any], ts: int | None = None) -> Order:
    """The fields of purchase ``p`` every reader needs, converted once. Raises what the
    conversions raise (``UnknownCurrencyError``, a naive datetime) before anything changes.
    ``ts``: ``to_ms(p["occurred_at"])`` when the caller has it already (the entity replica
    holds each record with it), else converted here."""
    get = p.get
    if ts is None:
        ts = to_ms(p["occurred_at"])
        assert ts is not None
    unit_price, currency = int(p["unit_price_minor"]), get("currency")
    quantity = int(p["quantity"])
    geo = get("geo")
    # ``Order``'s fields in order, made as ``Order._make`` makes them, without the frame of
    # ``Order(...)``: this runs once for every purchase a worker or a replay reads
    return _make_order(Order, (
        ts, to_ms(get("ingested_at")), p["purchase_id"], p["wallet"], p["show_id"],
        p["ticket_id"], p["channel"], quantity, *order_ref_minor(unit_price, quantity, currency),
        p["payment_method"], get("card_fingerprint"), p["ip"], get("device_id"), bool(geo),
        geo["lat"] if geo else None, geo["lon"] if geo else None,
        geo["country"] if geo else None,
        to_ms(get("sale_opens_at")), to_ms(get("account_created_at")),
        get("mfa_enabled"), get("phone_verified"), get("email_verified"),
    ))  # fmt: skip


_make_order = tuple.__new__


class Transfer(NamedTuple):
    ts: int  # block_time
    receiver: str  # lower-case
    sender: str
    record_id: str  # "<tx_hash>:<log_index>:<token_id>": applied once per wallet
    key: str  # the token: "<contract lower-case>:<token_id>" (a purchase's ticket_id)
    kind: str  # MINT, SALE, TRANSFER, BURN


def read_transfer(t: Mapping[str, Any]) -> Transfer:
    ts = to_ms(t["block_time"])
    assert ts is not None
    token = t["token_id"]
    return Transfer(ts, t["to_address"].lower(), t["from_address"].lower(),
                    f"{t['tx_hash']}:{t['log_index']}:{token}", token_key(t["contract"], token),
                    t["kind"])


def token_key(contract: str, token_id: str) -> str:
    return f"{contract.lower()}:{token_id}"
