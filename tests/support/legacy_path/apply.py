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

from processors.expiry import deleted_by
from processors.money import amount_ref, unit_price_ref
from processors.ring import cap_dict, count_ts_between, insert_row, insert_ts
from processors.state import (
    AUTH_CAP,
    DEVICES_CAP,
    GEO_CAP,
    PURCHASES_CAP,
    RESALES_CAP,
    SLACK_MS,
    TOKENS_CAP,
    WASH_CAP,
    GeoPoint,
    Holding,
    PurchaseFact,
    ResaleFact,
    WalletState,
)
from processors.timeutil import HOUR_MS, MINUTE_MS, to_ms
from tests.support.legacy_path.entity_state import EntityState, ShowState

Record = Mapping[str, Any]

FAILED_LOGIN_KINDS = frozenset({"LOGIN_FAILED", "ADMIN_LOGIN_FAILED"})
MFA_FAILED_KINDS = frozenset({"MFA_FAILED", "ADMIN_MFA_FAILED"})
LOGIN_OK_KINDS = frozenset({"LOGIN_OK", "ADMIN_LOGIN"})


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


def check_lateness(kind: str, ts_ms: int, wallet: WalletState, lateness_ms: int) -> None:
    """Admit an event at ``ts_ms`` to ``wallet``: raise ``LateEventError`` when it is beyond the
    allowed lateness. First, a wallet that expiry deletes by ``ts_ms`` (``processors/expiry.py``)
    is forgotten in place, so every path sees the same wallet whenever its last sweep ran."""
    if deleted_by(wallet, ts_ms):
        wallet.forget()
    mark = wallet.mark(kind)
    if mark and ts_ms < mark - lateness_ms:
        raise LateEventError(kind, wallet.address, ts_ms, mark, lateness_ms)


def mark_time(ts_ms: int, record: Record, config: FeatureConfig) -> int:
    """The time an event may advance a high-water mark to: its event time, but never beyond
    its ``ingested_at`` plus ``max_future_skew_ms`` (records without one: the event time)."""
    ingested = to_ms(record.get("ingested_at"))
    if ingested is None:
        return ts_ms
    return min(ts_ms, ingested + config.max_future_skew_ms)


def token_key(contract: str, token_id: str) -> str:
    return f"{contract.lower()}:{token_id}"


def purchase_amount(purchase: Record) -> int:
    """In reference-currency minor units (``processors.money``), like every amount in state."""
    return amount_ref(purchase)


def purchase_fact(purchase: Record, ts_ms: int) -> PurchaseFact:
    geo = purchase.get("geo")
    return PurchaseFact(
        ts_ms,
        purchase["show_id"],
        purchase_amount(purchase),
        int(purchase["quantity"]),
        purchase["payment_method"],
        purchase.get("card_fingerprint"),
        geo["lat"] if geo else None,
        geo["lon"] if geo else None,
        geo["country"] if geo else None,
        purchase["ip"],
        purchase.get("device_id"),
        purchase["channel"],
    )


def apply_purchase(
    purchase: Record,
    wallet: WalletState,
    ip: EntityState | None,
    device: EntityState | None,
    card: EntityState | None,
    show: ShowState | None,
    config: FeatureConfig = DEFAULT_CONFIG,
) -> None:
    """Record a purchase in the buyer's wallet and, when given, its IP/device/card and show.

    The live worker passes no entity states: every worker applies every purchase to its own
    ``EntityStore`` (``streams/entity_replica.py``); ``FeatureEngine`` does the same."""
    ts = to_ms(purchase["occurred_at"])
    assert ts is not None
    address = purchase["wallet"]
    wallet.address = wallet.address or address
    check_lateness("purchase", ts, wallet, config.allowed_lateness_ms)
    if not wallet.first_time(purchase["purchase_id"]):
        return  # a redelivery: already in every state
    fact = purchase_fact(purchase, ts)
    insert_row(wallet.purchases, fact, PURCHASES_CAP)
    wallet.purchases_total += 1
    wallet.amount_total_minor += fact.amount_minor
    wallet.last_purchase_ms = max(wallet.last_purchase_ms or ts, ts)
    if fact.lat is not None and fact.lon is not None:
        insert_row(wallet.geo_points, GeoPoint(ts, fact.lat, fact.lon, fact.country), GEO_CAP)
    if fact.device:
        wallet.devices[fact.device] = max(wallet.devices.get(fact.device, ts), ts)
        cap_dict(wallet.devices, DEVICES_CAP)
    _acquire_ticket(wallet, purchase, ts)
    wallet.observe(mark_time(ts, purchase, config), "purchase")
    for entity in (ip, device, card):
        if entity is not None:
            entity.observe(address, ts)
    if show is not None:
        apply_to_show(show, purchase, ts)


def _acquire_ticket(wallet: WalletState, purchase: Record, ts: int) -> None:
    key = purchase["ticket_id"]
    if _comes_back(wallet, key, ts):
        insert_ts(wallet.wash_cycles, ts, WASH_CAP)
    wallet.holdings[key] = Holding(ts, unit_price_ref(purchase))
    if purchase["channel"] == "PRIMARY":
        wallet.mints[key] = ts
        cap_dict(wallet.mints, TOKENS_CAP)


def apply_to_show(show: ShowState, purchase: Record, ts: int) -> None:
    """Record a purchase in its show: price ring, sale time, sale opening, ticket."""
    show.observe(purchase, ts)


def apply_auth(event: Record, wallet: WalletState, config: FeatureConfig = DEFAULT_CONFIG) -> None:
    """Record an auth event (failed logins, MFA failures, logins, password/email changes)."""
    ts = to_ms(event["occurred_at"])
    assert ts is not None
    wallet.address = wallet.address or (event.get("wallet") or "")
    check_lateness("auth", ts, wallet, config.allowed_lateness_ms)
    if not wallet.first_time(event["event_id"]):
        return
    kind = event["kind"]
    if kind in FAILED_LOGIN_KINDS:
        insert_ts(wallet.failed_logins, ts, AUTH_CAP)
    elif kind in MFA_FAILED_KINDS:
        insert_ts(wallet.mfa_failures, ts, AUTH_CAP)
    elif kind in LOGIN_OK_KINDS and (wallet.login_ok_ms is None or ts >= wallet.login_ok_ms):
        wallet.login_ok_ms = ts
        wallet.fails_before_login_ok = count_ts_between(wallet.failed_logins, ts - HOUR_MS, ts)
    elif kind == "PASSWORD_CHANGED":
        wallet.password_changed_ms = max(wallet.password_changed_ms or ts, ts)
    elif kind == "EMAIL_CHANGED":
        wallet.email_changed_ms = max(wallet.email_changed_ms or ts, ts)
    geo = event.get("geo")
    if geo:
        insert_row(wallet.geo_points, GeoPoint(ts, geo["lat"], geo["lon"], geo["country"]), GEO_CAP)
    wallet.observe(ts, "auth")


def apply_transfer(
    transfer: Record, wallet: WalletState, config: FeatureConfig = DEFAULT_CONFIG
) -> None:
    """Record a chain transfer on the side(s) of it that ``wallet`` is on.

    ``wallet.address`` says which side; when it is empty the wallet is taken to be the
    receiver (the topic's key). Callers apply a transfer to both the receiver and the sender.
    """
    ts = to_ms(transfer["block_time"])
    assert ts is not None
    receiver, sender = transfer["to_address"].lower(), transfer["from_address"].lower()
    wallet.address = wallet.address or receiver
    check_lateness("transfer", ts, wallet, config.chain_lateness_ms)
    record_id = f"{transfer['tx_hash']}:{transfer['log_index']}:{transfer['token_id']}"
    if not wallet.first_time(record_id):
        return
    key = token_key(transfer["contract"], transfer["token_id"])
    kind = transfer["kind"]
    if receiver == wallet.address:
        _receive_token(wallet, key, kind, ts)
    if sender == wallet.address:
        _send_token(wallet, key, kind, ts)
    wallet.observe(ts, "transfer")


def _receive_token(wallet: WalletState, key: str, kind: str, ts: int) -> None:
    if kind != "MINT" and _comes_back(wallet, key, ts):
        insert_ts(wallet.wash_cycles, ts, WASH_CAP)
    held = wallet.holdings.get(key)
    if held is None or held.acquired_ms > ts:
        wallet.holdings[key] = Holding(ts, held.price_minor if held else -1)
    if kind == "MINT":
        wallet.mints[key] = min(wallet.mints.get(key, ts), ts)
        cap_dict(wallet.mints, TOKENS_CAP)


def _comes_back(wallet: WalletState, key: str, ts: int) -> bool:
    """A token the wallet sent away returns to it (a wash-trading cycle such as A→B→C→A).

    Counted once: the purchase and its chain transfer both record the holding."""
    sent_ms = wallet.sent.get(key)
    if sent_ms is None or sent_ms > ts:
        return False
    held = wallet.holdings.get(key)
    return held is None or held.acquired_ms < sent_ms


def _send_token(wallet: WalletState, key: str, kind: str, ts: int) -> None:
    held = wallet.holdings.pop(key, None)
    if kind == "BURN":
        return
    hold_ms = ts - held.acquired_ms if held is not None and held.acquired_ms <= ts else -1
    mint_ms = wallet.mints.get(key)
    flip_ms = -1
    if kind == "SALE" and mint_ms is not None and mint_ms <= ts:
        flip_ms = ts - mint_ms
        del wallet.mints[key]  # only the first resale after the mint counts
    insert_row(wallet.resales, ResaleFact(ts, hold_ms, flip_ms), RESALES_CAP)
    wallet.sent[key] = max(wallet.sent.get(key, ts), ts)
    cap_dict(wallet.sent, TOKENS_CAP)
