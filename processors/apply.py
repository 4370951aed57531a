"""Applying events to state: purchases, auth events and chain transfers (mutate in place).

Every ``apply_*`` function mutates the states it is given and returns ``None``; the
feature functions only read. An event older than the wallet's watermark minus the allowed
lateness raises ``LateEventError`` before anything is changed; one within the lateness is
applied in event-time order (rings stay sorted by timestamp).

Tickets and tokens share one key space: a chain token is ``"<contract lower-case>:<token_id>"``
and a purchase's ``ticket_id`` joins it when the backend spells it the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from processors._native import EventAdmission
from processors.entity_state import EntityStore
from processors.expiry import RULES, deleted_by
from processors.records import TRANSFER_READER, Order, Transfer, read_order
from processors.state import SLACK_MS, WALLET_UPDATES, WalletState
from processors.timeutil import HOUR_MS, MINUTE_MS

Record = Mapping[str, Any]

ZERO_ADDRESS = "0x" + "0" * 40  # a mint's sender, a burn's receiver


@dataclass(frozen=True, slots=True)
class FeatureConfig:
    """Knobs of the feature computation. Lateness values must not exceed the state's
    ``SLACK_MS`` (1 h): that is how far beyond each window the state keeps rows."""

    allowed_lateness_ms: int = 5 * MINUTE_MS
    chain_lateness_ms: int = 30 * MINUTE_MS  # chain events arrive after confirmations
    # How far a purchase's event time may run ahead of its ingest time and still move the
    # wallet's high-water mark: one future-dated outlier cannot make later purchases late.
    max_future_skew_ms: int = 5 * MINUTE_MS
    small_amount_minor: int = 500  # a purchase at or under this is a card-testing probe
    impossible_km: float = 500.0
    impossible_within_ms: int = HOUR_MS
    min_travel_ms: int = MINUTE_MS  # floor of the time gap when computing geo speed

    def __post_init__(self) -> None:
        for name in ("allowed_lateness_ms", "chain_lateness_ms"):
            value = getattr(self, name)
            if not 0 <= value <= SLACK_MS:
                raise ValueError(f"FeatureConfig.{name}={value} must be in [0, {SLACK_MS}]")
        if self.max_future_skew_ms < 0:
            raise ValueError(f"FeatureConfig.max_future_skew_ms={self.max_future_skew_ms} < 0")


DEFAULT_CONFIG = FeatureConfig()


class LateEventError(ValueError):
    """An event older than its wallet's watermark minus the allowed lateness (dead-letter it)."""

    def __init__(self, kind: str, key: str, ts_ms: int, watermark_ms: int, lateness_ms: int):
        self.kind, self.key = kind, key
        self.ts_ms, self.watermark_ms, self.lateness_ms = ts_ms, watermark_ms, lateness_ms
        super().__init__(
            f"late {kind} for wallet {key}: event time {ts_ms} is "
            f"{watermark_ms - ts_ms} ms behind the watermark {watermark_ms} "
            f"(allowed lateness {lateness_ms} ms)"
        )


# Admitting an event to its wallet(s) and applying it, in native code
# (processors/native/src/events.rs): the live worker's apply_auth / apply_transfer below and
# FeatureEngine's auth_into / transfer_into (its dict of wallets and expiry wheel) share the
# reading, the lateness check and the applies.
EVENTS = EventAdmission(
    updates=WALLET_UPDATES, reader=TRANSFER_READER, late_error=LateEventError, rules=RULES,
    deleted_by=deleted_by, wallet_state=WalletState, zero_address=ZERO_ADDRESS,
)  # fmt: skip

# check_lateness(kind, ts_ms, wallet, lateness_ms): admit an event at ``ts_ms`` to ``wallet``,
# raising ``LateEventError`` when it is beyond the allowed lateness (more than ``lateness_ms``
# behind the wallet's mark of stream ``kind``). First, a wallet that expiry deletes by ``ts_ms``
# (``processors/expiry.py``: idle for ``WALLET_IDLE_MS``, then ``deleted_by``) is forgotten in
# place, so every path sees the same wallet whenever its last sweep ran. Times are ints.
check_lateness = EVENTS.check_lateness


def apply_purchase(
    purchase: Record,
    wallet: WalletState,
    entities: EntityStore | None = None,
    config: FeatureConfig = DEFAULT_CONFIG,
) -> None:
    """Record a purchase in the buyer's wallet and, when given, in an ``EntityStore`` (its
    IP, device, card and show).

    The live worker passes no store: every worker applies every purchase to its own
    ``EntityStore`` (``streams/entity_replica.py``); ``FeatureEngine`` does the same."""
    order = read_order(purchase)
    wallet.address = wallet.address or order.wallet
    check_lateness("purchase", order.ts, wallet, config.allowed_lateness_ms)
    if not apply_order(order, wallet, config):
        return  # a redelivery: already in every state
    if entities is not None:
        entities.apply_order(order)


def apply_order(o: Order, wallet: WalletState, config: FeatureConfig = DEFAULT_CONFIG) -> bool:
    """``apply_purchase`` to the wallet alone, for an order already read and admitted
    (``check_lateness``); False for a redelivery (nothing changed). In native code
    (``processors/native/src/updates.rs``): the purchase's row and geo point, its device, its
    ticket held (a wash cycle when it comes back, minted when PRIMARY), the totals, and the
    purchase stream's mark advanced at most to ``ingested_at + max_future_skew_ms``
    (``FeatureConfig``), one future-dated outlier being unable to make later purchases late."""
    return WALLET_UPDATES.apply_order(o, wallet, config.max_future_skew_ms)


def apply_auth(event: Record, wallet: WalletState, config: FeatureConfig = DEFAULT_CONFIG) -> None:
    """Record an auth event (failed logins, MFA failures, logins, password/email changes):
    ``to_ms`` of its ``occurred_at``, the wallet's address (when empty) the event's wallet or
    "", ``check_lateness`` then ``apply_auth_at``, in one native call (``EVENTS.auth``)."""
    EVENTS.auth(event, wallet, config.allowed_lateness_ms)


def apply_auth_at(event: Record, ts: int, wallet: WalletState) -> None:
    """``apply_auth`` for an event at ``ts`` already admitted (``check_lateness``). In native
    code (``processors/native/src/updates.rs``): once per ``event_id``, a failed login or MFA
    failure is a timestamp more (``AUTH_CAP`` kept); a login (``LOGIN_OK_KINDS``) at or after
    the last one becomes the last, with the failed logins in the hour before it counted; a
    password or email change keeps the latest time; the event's geo point, if any, is kept."""
    WALLET_UPDATES.apply_auth(event, ts, wallet)


def apply_transfer(
    transfer: Record, wallet: WalletState, config: FeatureConfig = DEFAULT_CONFIG
) -> None:
    """Record a chain transfer on the side(s) of it that ``wallet`` is on.

    ``wallet.address`` says which side; when it is empty the wallet is taken to be the
    receiver (the topic's key). Callers apply a transfer to both the receiver and the sender.
    ``read_transfer``, ``check_lateness`` then ``apply_read_transfer``, in one native call
    (``EVENTS.transfer``).
    """
    EVENTS.transfer(transfer, wallet, config.chain_lateness_ms)


def apply_read_transfer(t: Transfer, wallet: WalletState) -> None:
    """``apply_transfer`` for a transfer already read (``read_transfer``) and admitted. In
    native code (``processors/native/src/updates.rs``): once per ``record_id``, on the side(s)
    ``wallet.address`` is on. Received: the token is held (from its earliest time; a wash
    cycle when it comes back), minted at the earliest MINT. Sent: no longer held and, unless
    burnt, a resale (hold time, mint to first SALE) and the latest time it was sent."""
    WALLET_UPDATES.apply_transfer(t, wallet)
