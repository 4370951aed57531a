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
from datetime import UTC, datetime
from typing import Any, NamedTuple

from processors._native import OrderReader, TransferReader
from processors.money import default_rates, order_ref_minor
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
    holds each record with it), else converted here.

    Native code reads it (``OrderReader``, ``processors/native/src/order.rs``): the fields in
    this order, each as ``p[name]`` or ``p.get(name)``, ``int`` of the price and quantity,
    ``to_ms`` of ``occurred_at``, ``ingested_at``, ``sale_opens_at`` and
    ``account_created_at`` (a UTC datetime converted natively, anything else by ``to_ms``),
    ``order_ref_minor`` of (unit price, quantity, currency) for the amount and unit, ``bool``
    of ``geo`` and its lat, lon and country when it is truthy; the other fields as they are."""
    return _read(p, ts)


# what both native readers convert a timestamp with: a datetime in UTC natively, by to_ms's
# own steps from its epoch; anything else by to_ms
_CLOCK: dict[str, Any] = {"datetime": datetime, "utc": UTC,
                          "epoch": datetime(1970, 1, 1, tzinfo=UTC), "to_ms": to_ms}  # fmt: skip

# every purchase a worker or a replay reads goes through here (or through
# ``processors.crowd.read_purchase``, which reads its order with this reader)
ORDER_READER = OrderReader(
    order=Order, order_fields=Order._fields, default_rates=default_rates,
    order_ref_minor=order_ref_minor, **_CLOCK,
)  # fmt: skip
_read = ORDER_READER.read


class Transfer(NamedTuple):
    ts: int  # block_time
    receiver: str  # lower-case
    sender: str
    record_id: str  # "<tx_hash>:<log_index>:<token_id>": applied once per wallet
    key: str  # the token: "<contract lower-case>:<token_id>" (a purchase's ticket_id)
    kind: str  # MINT, SALE, TRANSFER, BURN


def read_transfer(t: Mapping[str, Any]) -> Transfer:
    """The fields of chain transfer ``t`` every reader needs, converted once: ``to_ms`` of
    ``block_time`` (asserted not None), ``to_address`` and ``from_address`` lower-cased, the
    record id ``f"{tx_hash}:{log_index}:{token_id}"``, the token key (``token_key``) and the
    kind, the fields read in this order. Native code reads it (``TRANSFER_READER``,
    ``processors/native/src/events.rs``), a UTC datetime converted natively as for an order."""
    return TRANSFER_READER.read(t)


def token_key(contract: str, token_id: str) -> str:
    """A chain token's key, ``f"{contract.lower()}:{token_id}"`` (a purchase's ``ticket_id``
    when the backend spells it so), made natively as ``read_transfer`` makes it."""
    return TRANSFER_READER.token_key(contract, token_id)


# every transfer a worker, a replay or the engine reads goes through here
TRANSFER_READER = TransferReader(transfer=Transfer, transfer_fields=Transfer._fields, **_CLOCK)
