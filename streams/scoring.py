"""One batch of purchases: decode, wait for the entity replica, features, decide, send.

Nothing escapes a batch: a record that cannot be decoded, is too late, or makes the feature
code, a rule or the model raise goes to the dead-letter topic with the reason, and the rest
of the batch is decided. The wallet states are returned, not written: the agent writes them
only after the decisions are acknowledged by the broker, so a state that says "purchase
applied" always means "its decision is on the topic" (see ``already_decided``). A purchase
redelivered after a crash between the two is found on the decisions topic instead
(``streams/redelivery.py``): applied to its state, not decided again.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from infra import topics as registry
from processors.apply import LateEventError, apply_order, check_lateness
from processors.compute import order_features
from processors.crowd import crowd_read
from processors.marks import purchase_cluster
from processors.records import read_order
from processors.state import WalletState
from processors.timeutil import to_ms
from schemas.codec import DecodeError
from streams import metrics
from streams.context import ctx
from streams.tables import wallet_to_state

log = logging.getLogger(__name__)

Touched = dict[str, tuple[WalletState, object]]


def decode(events) -> list[tuple[object, dict]]:
    """Each event's purchase: the entity replica's copy when it fetched the record first
    (held, or applied with its read kept: ``EntityReplica.decoded``), else decoded here (a
    record that cannot be is dead-lettered)."""
    held = ctx.replica.decoded([(e.message.partition, e.message.offset) for e in events])
    decoded: list[tuple[object, dict]] = []
    for event, purchase in zip(events, held, strict=True):
        try:
            decoded.append((event, purchase or ctx.codecs.purchase.decode(event.value)))
        except DecodeError as exc:
            ctx.outputs.dead_letter(registry.PURCHASES, event, exc)
    return decoded


async def wait_for_entities(batch: list[tuple[object, dict]],
                            owned: dict[int, int | None] | None = None) -> None:
    """Hold the batch until the entity replica has applied every partition up to its event
    time, and this batch's own records (so entity features equal replay's). ``owned``: the
    partitions this worker scores, with their committed offsets (what the replica's floor
    keeps rows for, ``EntityReplica.announce``)."""
    if not batch:
        return
    records = [(event.message.partition, event.message.offset,
                to_ms(purchase["occurred_at"]) or 0, purchase) for event, purchase in batch]
    until = max(ts for _, _, ts, _ in records)
    offsets: dict[int, int] = {}  # per partition: the batch's last offset, earliest event time
    earliest: dict[int, int] = {}
    for partition, offset, ts, _ in records:
        offsets[partition] = max(offsets.get(partition, -1), offset)
        earliest[partition] = min(earliest.get(partition, ts), ts)
    replica = ctx.replica
    fence = replica.announce(offsets, earliest, until, owned)
    replica.offer(records)
    if replica.covers(until, offsets, fence):
        return
    wait_s = ctx.settings.stream.entity_wait_s
    if not await asyncio.to_thread(replica.wait_covers, until, offsets, wait_s, fence):
        metrics.ENTITY_WAIT_TIMEOUTS.inc()
        log.warning("entity replica did not cover the batch within %.1f s: deciding with "
                    "the entity state it has", wait_s)


def already_decided(wallet: WalletState, purchase: dict) -> bool:
    """A redelivered purchase whose state was written, hence whose decision was delivered."""
    return purchase["purchase_id"] in wallet.applied


class Reads:
    """What ``_features`` reads for every purchase of a batch, looked up on ``ctx`` once (the
    replica's take_read and stores, the feature config, the marks, the redeliveries): nothing
    of it changes during the batch (``score`` builds it after ``ctx.marks.current()``, under
    the replica's lock)."""

    __slots__ = ("take_read", "entities", "crowds", "config", "lateness_ms", "marks", "decided")

    def __init__(self) -> None:
        replica = ctx.replica
        self.take_read = replica.take_read
        self.entities, self.crowds = replica.store, replica.crowds
        self.config = ctx.feature_config
        self.lateness_ms = self.config.allowed_lateness_ms
        self.marks = ctx.marks.store
        self.decided = ctx.redeliveries.decided


def _features(event, purchase: dict, touched: Touched,
              reads: Reads | None = None) -> tuple[WalletState, tuple | None, str]:
    """(wallet, its feature row or None for a redelivery, the linked-wallet cluster id). The
    purchase is read once: the entity replica's read when it applied the record (the same
    ``read_order`` and ``crowd_read`` of the same record), else here. ``reads``: the batch's
    (``score``), else looked up now."""
    reads = Reads() if reads is None else reads
    message = event.message
    read = reads.take_read(message.partition, message.offset, purchase["purchase_id"])
    order, crowd = read if read is not None else (read_order(purchase), None)
    held = touched.get(order.wallet)
    wallet = (held[0] if held is not None
              else wallet_to_state.get(order.wallet) or WalletState(address=order.wallet))
    if already_decided(wallet, purchase):
        return wallet, None, ""
    wallet.address = wallet.address or order.wallet
    decided = reads.decided(message.partition, order.purchase_id)
    try:
        check_lateness("purchase", order.ts, wallet, reads.lateness_ms)
    except LateEventError:
        if decided:  # a state written after its batch, which holds it: never dead-lettered
            return wallet, None, ""
        raise
    if decided:
        apply_order(order, wallet, reads.config)  # decided before a crash: state catches up only
        return wallet, None, ""
    if crowd is None:
        crowd = crowd_read(purchase, order.unit)
    entities = reads.entities
    row = order_features(order, purchase, wallet, entities, reads.config, reads.crowds, crowd,
                         reads.marks)
    apply_order(order, wallet, reads.config)
    return wallet, row, purchase_cluster(entities, order)


def score(batch: list[tuple[object, dict]]) -> Touched:
    """Decide every purchase of a decoded batch and send the decisions; return the touched
    wallet states (key → (state, last event)) for the agent to write once delivered."""
    touched: Touched = {}
    kept, rows, clusters = [], [], []
    ctx.marks.current()  # confirmed fraud that arrived since the last batch
    with (metrics.PHASES["features"].time(), ctx.replica.lock,
          wallet_to_state.reading(purchase["wallet"] for _, purchase in batch)):
        reads = Reads()
        for event, purchase in batch:
            try:
                wallet, row, cluster = _features(event, purchase, touched, reads)
            except Exception as exc:  # late, or any per-record failure: never the batch
                ctx.outputs.dead_letter(registry.PURCHASES, event, exc)
                continue
            touched[purchase["wallet"]] = (wallet, event)
            if row is None:
                metrics.REDELIVERED.inc()
                continue
            kept.append((event, purchase))
            rows.append(row)
            clusters.append(cluster)
    with metrics.PHASES["decide"].time():
        outcomes = _decide(kept, rows, clusters)
    with metrics.PHASES["send"].time():
        sources = {purchase["purchase_id"]: event.message for event, purchase in kept}
        for outcome in outcomes:
            ctx.outputs.decision(outcome.decision, sources[outcome.decision["purchase_id"]])
            for security_event in outcome.security_events:
                ctx.outputs.security_event(security_event)
        for event in ctx.decider.events(datetime.now(UTC)):
            ctx.outputs.security_event(event)
    return touched


def _decide(kept: list[tuple[object, dict]], rows: list[tuple], clusters: list) -> list:
    """Decide a batch; when it raises, split it in halves until the failing record is found
    and dead-lettered (``sinks/runner.py`` does the same for refused writes)."""
    if not kept:
        return []
    purchases = [p for _, p in kept]
    try:
        return ctx.decider.decide(purchases, rows, datetime.now(UTC), clusters)
    except Exception as exc:
        if len(kept) == 1:
            ctx.outputs.dead_letter(registry.PURCHASES, kept[0][0], exc)
            return []
        half = len(kept) // 2
        return (_decide(kept[:half], rows[:half], clusters[:half])
                + _decide(kept[half:], rows[half:], clusters[half:]))
