"""Faust agents: read, decode, call processors/, write state, send. I/O only.

    purchases ─▶ score_purchases ─▶ decisions, security events
                      │  reads wallet_to_state (own partition) and entity_to_state (all partitions)
                      └─▶ entity-observations (a batch's purchases, grouped by the partition
                          that owns each ip/device/card/show key)
                                └─▶ track_entities ─▶ entity_to_state
    auth-events ─▶ track_auth_events ─▶ wallet_to_state
    chain-transfers ─▶ track_transfers ─▶ wallet_to_state (receiver), transfers-by-sender
    transfers-by-sender ─▶ track_transfers ─▶ wallet_to_state (sender)

Every agent takes records in batches (``take_events``), catches per-record errors (bad bytes,
late events, anything else) and sends the record to its topic's dead-letter twin with the
reason, writes each touched table key once per
batch, and flushes its producer before Faust commits the batch's offsets.
"""

from __future__ import annotations

import asyncio
import logging

from infra import topics as registry
from processors.entities import observe_entity
from processors.features import apply_auth, apply_transfer
from processors.state import WalletState
from streams import metrics, tables, topics
from streams.app import app
from streams.context import ctx
from streams.scoring import score_batch
from streams.tables import entity_to_state, wallet_to_state

log = logging.getLogger(__name__)
ZERO_ADDRESS = "0x" + "0" * 40


def batches(stream):
    cfg = ctx.settings.stream
    return metrics.count_consumed(stream.take_events(cfg.batch_size, cfg.batch_within_s), ctx.prefix)


def _wallet(address: str, cache: dict[str, tuple[WalletState, object]]) -> WalletState:
    if address in cache:
        return cache[address][0]
    state = wallet_to_state.get(address)
    return state if state is not None else WalletState(address=address)


def write_back(table, touched: dict[str, tuple[object, object]]) -> None:
    """One changelog write per key per batch, on the partition of the key's last event."""
    tables.write_back(table, touched, ctx.outputs.send_raw)


@app.agent(topics.purchases)
async def score_purchases(stream):
    """Features, rules, model and policy for each batch of purchases → decisions."""
    async for events in batches(stream):
        score_batch(events)
        await asyncio.to_thread(ctx.outputs.flush)


@app.agent(topics.entity_observations)
async def track_entities(stream):
    """Apply each observation to the IP, device, card or show state its entity key names.
    Every key in a record belongs to the record's partition (``partition_of``)."""
    async for events in batches(stream):
        touched: dict[str, tuple[object, object]] = {}
        for event in events:
            try:
                batch = ctx.codecs.observations.decode(event.value)["observations"]
            except Exception as exc:  # a poison record must not crash-loop the agent
                ctx.outputs.dead_letter(registry.PURCHASES, event, exc)
                continue
            for obs in batch:
                key = obs["entity"]
                state = touched[key][0] if key in touched else entity_to_state.get(key)
                touched[key] = (observe_entity(key, state, obs), event)
        write_back(entity_to_state, touched)
        await asyncio.to_thread(ctx.outputs.flush)


@app.agent(topics.auth_events)
async def track_auth_events(stream):
    """Failed logins, password changes and devices into the wallet's state."""
    async for events in batches(stream):
        touched: dict[str, tuple[WalletState, object]] = {}
        for event in events:
            try:
                auth = ctx.codecs.auth.decode(event.value)
                if not auth.get("wallet"):
                    continue  # user-only events carry no wallet state
                wallet = _wallet(auth["wallet"], touched)
                apply_auth(auth, wallet, ctx.feature_config)
                touched[auth["wallet"]] = (wallet, event)
            except Exception as exc:  # a poison record must not crash-loop the agent
                ctx.outputs.dead_letter(registry.AUTH_EVENTS, event, exc)
        write_back(wallet_to_state, touched)
        await asyncio.to_thread(ctx.outputs.flush)


@app.agent(topics.transfers)
async def track_transfers(stream):
    """Holdings, mints and resales of both sides of each chain transfer."""
    by_sender = registry.full_name(registry.TRANSFERS_BY_SENDER, ctx.prefix)
    async for events in batches(stream):
        touched: dict[str, tuple[WalletState, object]] = {}
        for event in events:
            sender_side = event.message.topic == by_sender
            try:
                transfer = ctx.codecs.transfer.decode(event.value)
                side = transfer["from_address" if sender_side else "to_address"].lower()
                if side != ZERO_ADDRESS:
                    wallet = _wallet(side, touched)
                    apply_transfer(transfer, wallet, ctx.feature_config)
                    touched[side] = (wallet, event)
                sender = transfer["from_address"].lower()
                if not sender_side and sender not in (ZERO_ADDRESS, side):
                    ctx.outputs.send(registry.TRANSFERS_BY_SENDER, sender, event.value)
            except Exception as exc:  # a poison record must not crash-loop the agent
                ctx.outputs.dead_letter(registry.CHAIN_TRANSFERS, event, exc)
        write_back(wallet_to_state, touched)
        await asyncio.to_thread(ctx.outputs.flush)
