"""Faust agents: read, decode, call processors/, write state, send. I/O only.

    purchases ─▶ score_purchases ─▶ decisions, security events
                      │  reads wallet_to_state (own partitions) and the worker's entity
                      │  replica (every partition of purchases, streams/entity_replica.py)
    auth-events ─▶ track_auth_events ─▶ wallet_to_state
    chain-transfers ─▶ track_transfers ─▶ wallet_to_state (receiver), transfers-by-sender
    transfers-by-sender ─▶ track_transfers ─▶ wallet_to_state (sender)

Every agent takes records in batches (``take_events``), catches per-record errors (bad bytes,
late events, anything else) and sends the record to its topic's dead-letter twin with the
reason, writes each touched table key once per
batch, and has its producer flushed before Faust commits the batch's offsets. Batches pass through
``faust_compat.to_process`` first: no stale-generation or repeated record is processed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

from infra import topics as registry
from processors.features import ZERO_ADDRESS, apply_auth, apply_transfer
from processors.state import WalletState
from streams import metrics, scoring, tables, topics
from streams.app import app
from streams.context import ctx
from streams.faust_compat import OffsetGuard, take_available, to_process
from streams.outputs import OutputError
from streams.tables import wallet_to_state

log = logging.getLogger(__name__)
FAULT_EXIT = 75  # exit status of the injected fault (SENTINEL_FAIL_AFTER_DECIDED_BATCHES)


def offset_guard() -> OffsetGuard:
    consumer = app.consumer
    if consumer.offset_guard is None:
        # written by idempotent producers (the gateway's; transfers by sender: the worker's
        # own outputs), never in transactions: no holes. Chain transfers are written in
        # transactions: each commit leaves a marker that takes an offset.
        gapless = {registry.full_name(spec, ctx.prefix) for spec in (
            registry.PURCHASES, registry.AUTH_EVENTS, registry.TRANSFERS_BY_SENDER)}
        consumer.offset_guard = OffsetGuard(committed_of=consumer.committed_offset,
                                            broker_committed=consumer.group_committed,
                                            gapless=gapless.__contains__,
                                            log_start=consumer.log_start,
                                            next_record=consumer.next_record)  # fmt: skip
    return consumer.offset_guard


@app.timer(interval=5.0)
async def unstick_partitions():
    """Seek back a source partition that has records waiting but delivered none for two looks
    (Faust can lose its place at start-up), or whose commit is held by a record never
    processed while later ones were (streams/faust_compat.py, overrides 4 and 10)."""
    if app.rebalancing:
        return
    consumer, guard = app.consumer, offset_guard()
    sources = {registry.full_name(spec, ctx.prefix) for spec in (
        registry.PURCHASES, registry.AUTH_EVENTS, registry.CHAIN_TRANSFERS,
        registry.TRANSFERS_BY_SENDER)}
    for tp in consumer.assignment():
        if tp.topic not in sources:
            continue
        target = guard.stalled(tp, consumer.highwater(tp))
        if target is not None:
            log.warning("partition %s of %s stalled at offset %d with records waiting: "
                        "seeking back", tp.partition, tp.topic, target)
            metrics.OFFSET_GUARD_SEEKS.labels("stalled").inc()
            await consumer.seek(tp, target)
        elif guard.gapless(tp.topic) and (target := guard.held_at(
                tp, consumer.commit_base(tp), consumer.first_acked(tp))) is not None:
            log.warning("partition %s of %s: commit held at offset %d, later records acked: "
                        "seeking back", tp.partition, tp.topic, target)  # fmt: skip
            metrics.OFFSET_GUARD_SEEKS.labels("commit_held").inc()
            await consumer.seek(tp, target)


@app.timer(interval=1.0)
async def follow_fraud_marks():
    """Apply confirmed fraud marks as they arrive, between batches too (an idle worker is up
    to date when traffic resumes; the follower logs how far it has read). Only once the
    follower exists (built at warm-up or by the first batch): building it blocks the loop."""
    if "marks" in vars(ctx):
        ctx.marks.current()


def owned_purchase_partitions() -> dict[int, int | None]:
    """The purchases partitions assigned to this worker, with their committed offsets."""
    consumer = app.consumer
    name = registry.full_name(registry.PURCHASES, ctx.prefix)
    return {tp.partition: consumer.committed_offset(tp)
            for tp in consumer.assignment() if tp.topic == name}


async def batches(stream):
    """Batches of current, distinct records, each taken as soon as the records fetched are
    in (``take_available`` keeps stale copies across a rebalance, as ``take_events`` does:
    see ``streams/faust_compat.py``)."""
    cfg = ctx.settings.stream
    guard = offset_guard()
    app.consumer.before_commit = before_commit
    take = take_available(stream, cfg.batch_size, cfg.batch_within_s)
    async for events in metrics.count_consumed(take, ctx.prefix):
        kept, seek = to_process(events, app, guard)
        for tp, offset in seek.items():
            metrics.OFFSET_GUARD_SEEKS.labels("skipped").inc()
            await app.consumer.seek(tp, offset)
        yield kept


def _wallet(address: str, cache: dict[str, tuple[WalletState, object]]) -> WalletState:
    if address in cache:
        return cache[address][0]
    state = wallet_to_state.get(address)
    return state if state is not None else WalletState(address=address)


_settling = asyncio.Lock()  # one settle at a time: each key's writes stay in order


async def settle() -> None:
    """Write the wallet states held since the last settle, once the outputs produced with
    them (a batch's decisions) are acknowledged: a state that says "purchase applied" always
    means "its decision is on the topic" (``scoring.already_decided``)."""
    async with _settling:
        if not wallet_to_state.held:
            return
        held = dict(wallet_to_state.held)  # what was produced before the flush starts
        await flush_outputs()
        tables.write_held(wallet_to_state, held, ctx.outputs.send_raw)


_settles: set[asyncio.Task] = set()


def settle_soon() -> None:
    """``settle`` in the background: the agent takes its next batch while the broker
    acknowledges this one's decisions (reads see the held states meanwhile)."""
    task = asyncio.create_task(settle(), name="settle-wallet-states")
    _settles.add(task)
    task.add_done_callback(_settles.discard)


_unsettled: tuple[int, dict] | None = None  # the last batch's mark and held states, not settled
# The last batch's states are settled in the background when no batch came to write them
# within this: an idle worker, or one about to stop (Faust's commit at shutdown does not
# always come), leaves no state unwritten for longer.
IDLE_SETTLE_S = 0.02


def settle_after_batch() -> None:
    """After a batch's decisions are sent: when the previous batch's outputs are all
    acknowledged (a look at the producer that does not wait: ``Outputs.delivered`` with the
    mark taken after them), write its states still held as they were, at once, with no task
    and no thread hop; this batch's wait for the next batch, a commit or a rebalance (at
    1 000 purchases/s a batch's decisions are acknowledged by the time the next is decided).
    Otherwise, or while a settle is under way, ``settle_soon``; and ``settle_soon`` too when
    no batch came within ``IDLE_SETTLE_S``. An entry held again or written by a settle
    meanwhile is left out: no key's write goes behind a newer one."""
    global _unsettled
    previous, _unsettled = _unsettled, None
    outputs, held = ctx.outputs, wallet_to_state.held
    if _settling.locked() or (previous is not None and not outputs.delivered(previous[0])):
        settle_soon()
        return
    mark = outputs.mark()  # after this batch's decisions, before the changelog records
    if previous is not None:
        current = {key: entry for key, entry in previous[1].items() if held.get(key) is entry}
        tables.write_held(wallet_to_state, current, outputs.send_raw)
    if held:
        _unsettled = (mark, dict(held))
        asyncio.get_running_loop().call_later(IDLE_SETTLE_S, _settle_idle, _unsettled)


def _settle_idle(unsettled: tuple[int, dict]) -> None:
    """No batch came to write ``unsettled``: settle in the background."""
    global _unsettled
    if _unsettled is unsettled:
        _unsettled = None
        settle_soon()


@app.on_partitions_revoked.connect
async def settle_revoked(app, revoked, **kwargs) -> None:
    """Held states are written, and acknowledged, before a rebalance completes, so the next
    owner of a partition recovers them from the changelog (as it would have before they were
    held): a changelog record still in flight when it reads that far would come to it later,
    into its recovery buffer, older than what it decides meanwhile (``streams/tables.py``,
    ``Ownership``)."""
    await settle()
    await flush_outputs()


async def before_commit() -> None:
    """Before Faust commits offsets: the held states are written and everything the agents
    produced (decisions, states, dead letters) is acknowledged."""
    await settle()
    await flush_outputs()


async def flush_outputs() -> None:
    """Wait until the batch's outputs are acknowledged (however long the broker is away). If
    one failed for good, stop the worker at once: Faust would restart the crashed agent and
    acknowledge the batch whose outputs are lost; a new process gets the batch again."""
    try:
        if not ctx.outputs.delivered():  # else no thread hop
            await asyncio.to_thread(ctx.outputs.flush)
    except OutputError:
        log.critical("outputs of a batch lost: exiting so that the batch is redelivered",
                     exc_info=True)  # fmt: skip
        os._exit(70)


@app.agent(topics.purchases)
async def score_purchases(stream):
    """Features, rules, model and policy for each batch of purchases → decisions. A batch's
    wallet states are held (every agent reads them at once) and written once its decisions
    are acknowledged, without waiting for them: by the next batch when they are by then
    (``settle_after_batch``), else in the background; the broker's acknowledgement overlaps
    the next batch instead of adding to it. A purchase redelivered before its state
    was written or its offset committed is found on the decisions topic (read back at each
    assignment, ``streams/redelivery.py``) and not decided again."""
    decided_batches, fault_after = 0, ctx.settings.stream.fail_after_decided_batches
    async for events in batches(stream):
        metrics.observe_batch_age([e.message.timestamp for e in events], time.time())
        await ctx.redeliveries.load(events, app.consumer_generation_id)
        with metrics.PHASES["decode"].time():
            batch = scoring.decode(events)
        with metrics.PHASES["entity_wait"].time():
            await scoring.wait_for_entities(batch, owned_purchase_partitions())
        batch = [(e, p) for e, p in batch if not app.consumer.is_stale(e.message)]
        touched = scoring.score(batch)
        tables.hold(wallet_to_state, touched)
        decided_batches += bool(touched)
        if fault_after and decided_batches == fault_after:
            await flush_outputs()  # the decisions are on the topic; their states are not
            log.critical("fault injected: exiting after %d decided batches", decided_batches)
            os._exit(FAULT_EXIT)
        settle_after_batch()
        ctx.redeliveries.passed(events)


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
        tables.hold(wallet_to_state, touched)
        await settle()


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
        tables.hold(wallet_to_state, touched)
        await settle()
