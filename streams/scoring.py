"""One batch of purchases: decode, features from state, decide, send, write state back."""

from __future__ import annotations

from datetime import UTC, datetime

from infra import topics as registry
from processors.entities import KINDS as ENTITY_KINDS
from processors.entities import entity_keys, observations_by_partition
from processors.features import LateEventError, apply_purchase, purchase_features
from processors.state import EntityState, ShowState, WalletState
from schemas.codec import DecodeError
from streams.context import ctx
from streams.tables import entity_to_state, wallet_to_state, write_back


def _decode(events) -> list[tuple[object, dict]]:
    decoded = []
    for event in events:
        try:
            decoded.append((event, ctx.codecs.purchase.decode(event.value)))
        except DecodeError as exc:
            ctx.outputs.dead_letter(registry.PURCHASES, event, exc)
    return decoded


def _entity(key: str, overlay: dict):
    """This batch's copy of an entity state: the table's, plus this batch's purchases.
    A copy, because only ``track_entities`` writes the table."""
    if key not in overlay:
        state = entity_to_state.get(key)
        overlay[key] = state.copy() if state is not None else None
    return overlay[key]


def _states(purchase: dict, touched: dict, overlay: dict):
    """The buyer's wallet state and this batch's ip, device, card and show states."""
    address = purchase["wallet"]
    if address in touched:
        wallet = touched[address][0]
    else:
        wallet = wallet_to_state.get(address) or WalletState(address=address)
    by_kind = {key.split(":", 1)[0]: key for key in entity_keys(purchase)}
    entities = []
    for kind in ENTITY_KINDS:
        key = by_kind.get(kind)
        state = _entity(key, overlay) if key else None
        if key and state is None:
            state = overlay[key] = ShowState() if kind == "show" else EntityState()
        entities.append(state)
    return wallet, entities


def score_batch(events) -> None:
    """Decide every purchase of a batch; write each touched wallet's state once."""
    decoded = _decode(events)
    if not decoded:
        return
    purchases = [p for _, p in decoded]
    blocked = ctx.decider.blocked(purchases)
    touched: dict[str, tuple[WalletState, object]] = {}
    overlay: dict = {}
    kept, rows = [], []
    for event, purchase in decoded:
        wallet, (ip, device, card, show) = _states(purchase, touched, overlay)
        try:
            features = purchase_features(purchase, wallet, ip, device, card, show, ctx.feature_config)
            apply_purchase(purchase, wallet, ip, device, card, show, ctx.feature_config)
        except LateEventError as exc:
            ctx.outputs.dead_letter(registry.PURCHASES, event, exc)
            continue
        touched[purchase["wallet"]] = (wallet, event)
        kept.append((event, purchase))
        rows.append(features)
    outcomes = ctx.decider.decide([p for _, p in kept], rows, blocked, datetime.now(UTC))
    for outcome in outcomes:
        ctx.outputs.decision(outcome.decision)
        for security_event in outcome.security_events:
            ctx.outputs.security_event(security_event)
    for event in ctx.decider.drift.events(datetime.now(UTC)):
        ctx.outputs.security_event(event)
    spec = registry.ENTITY_OBSERVATIONS
    grouped = observations_by_partition([p for _, p in kept], spec.partitions)
    for partition, observations in grouped.items():
        value = ctx.codecs.observations.encode({"observations": observations})
        ctx.outputs.send(spec, f"p{partition}", value, partition=partition)
    write_back(wallet_to_state, touched, ctx.outputs.send_raw)
