"""Faust tables: per-wallet state, changelog-backed, expiring in event time.

A table's name is its changelog topic's name (``<app>-<table>-changelog``): renaming one
drops its state, so these names are fixed.

- ``wallet_to_state``: one ``WalletState`` per wallet. Written by the agents of the
  wallet-keyed topics (purchases, auth events, chain transfers), which are co-partitioned.

IP, device, card and show states are not a table: every worker holds all of them, rebuilt
from the purchases topic (``streams/entity_replica.py``). An earlier ``entity_to_state``
table was complete only with up to standby replicas + 1 workers, and a Faust GlobalTable
made a restarted worker skip its stream partitions (faust-streaming 0.15).

Values are ``processors/statecodec.py`` bytes (versioned msgspec; older versions still
decode), on the changelog and in memory alike: the store keeps the very bytes it sends, and a
read decodes them (a few microseconds; each key is read once per batch). Measured in one
process over 200 000 simulated purchases (68 667 wallets): 209 -> 263 MB resident with
encoded wallets, 304 -> 393 MB with ``WalletState`` objects. An earlier attempt kept orjson
bytes and measured worse (550 -> 715 MB): orjson returns its output in an over-allocated
buffer, so every stored value carried hidden slack and fragmented the heap; the same bytes
copied to an exact-size object measured 215 -> 259 MB. ``statecodec.encode`` returns an
exact-size object (the version byte is concatenated in front).

Held states: an agent does not write a batch's states itself. ``hold`` keeps them (encoded)
in ``StateTable.held``, which every read sees at once, so agents sharing a wallet (purchases,
auth events, transfers) never overwrite each other's newer state; ``write_held`` writes them
once the outputs produced with them are acknowledged (``streams/agents.settle``), and every
offset commit and every rebalance settles first.

Expiry: each table partition has a watermark (the largest event time of the wallets written
to it) and an ``ExpiryWheel`` of its keys. Every ``SWEEP_EVERY_MS`` of watermark, the keys due
are handed to ``processors.expiry.sweep``: a summary replaces the value and is written to the
changelog; a deleted wallet is removed and a tombstone (value None) written, so the compacted
changelog shrinks with the table and a restarted worker does not bring the wallet back.

Summaries leave memory: they go to ``StateTable.summaries``, a private SQLite file
(``streams/summary_store.py``); a read looks in the held states, then in memory, then there.
Recovery sends each recovered summary there too, so a restarted worker's memory holds only
the wallets active in the last 7 days (plus one hour), however many ever bought.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import faust
import orjson

from infra.settings import get_settings
from processors import expiry, statecodec
from streams import metrics
from streams.app import app
from streams.summary_store import SummaryStore


class StateTable(faust.Table):
    """JSON keys, raw byte values decoded on read (``statecodec``). Faust derives a table's
    serializers from ``value_type`` and builds the changelog topic with them when the table is
    registered, so they are set here, before registration; recovery reads with them too."""

    def __init__(self, app, **kwargs):
        super().__init__(app, **kwargs)
        self.key_serializer = "json"
        self.value_serializer = "raw"
        self.expiry = TableExpiry()
        self.held: dict = {}  # key -> (bytes, event, state): not yet written (``hold``)

    @cached_property
    def summaries(self) -> SummaryStore:
        """Idle wallets' summaries, on local disk (``streams/summary_store.py``)."""
        return SummaryStore(get_settings().stream.data_dir / "summaries")

    def __getitem__(self, key):
        held = self.held.get(key)
        if held is not None:
            return statecodec.decode(held[0])
        try:
            value = super().__getitem__(key)
        except KeyError:
            value = self.summaries.get(key)
            if value is None:
                raise
        return statecodec.decode(value) if isinstance(value, bytes) else value

    def apply_changelog_batch(self, batch) -> None:
        """Recovery: the latest value of each key goes to the summary store when it is a
        summary, else to Faust's store (tombstones delete from both); each key is filed in its
        partition's expiry wheel by its due time."""
        latest = {}
        for event in batch:
            latest[self._to_key(event.key)] = event
        summaries, kept = [], []
        for key, event in latest.items():
            value, partition = event.message.value, event.message.partition
            state = None if value is None else statecodec.decode(value)
            if state is not None and expiry.is_summary(state):
                summaries.append((key, partition, value))
                self.data.pop(key, None)
            else:
                kept.append(event)
            if state is not None:
                self.expiry.wheel(partition).file(key, expiry.due_ms(state))
        super().apply_changelog_batch(kept)
        self.summaries.delete(self._to_key(e.key) for e in kept)
        self.summaries.put(summaries)

    async def on_recovery_completed(self, active_tps, standby_tps) -> None:
        """Faust's store forgets the partitions no longer assigned; so does the summary store."""
        await super().on_recovery_completed(active_tps, standby_tps)
        self.summaries.keep_partitions({tp.partition for tp in active_tps | standby_tps})


@dataclass
class TableExpiry:
    """Per partition: the watermark, when it was last swept, and the keys by due time."""

    watermarks: dict[int, int] = field(default_factory=dict)
    swept: dict[int, int] = field(default_factory=dict)
    wheels: dict[int, expiry.ExpiryWheel] = field(default_factory=dict)

    def wheel(self, partition: int) -> expiry.ExpiryWheel:
        if partition not in self.wheels:
            self.wheels[partition] = expiry.ExpiryWheel()
        return self.wheels[partition]

    def written(self, key, partition: int, state) -> None:
        self.wheel(partition).file(key, expiry.due_ms(state))
        if state.watermark_ms > self.watermarks.get(partition, 0):
            self.watermarks[partition] = state.watermark_ms

    def sweep_time(self, partition: int) -> int | None:
        """The event time to sweep ``partition`` at, when a sweep is due."""
        wm = self.watermarks.get(partition, 0)
        if wm - self.swept.get(partition, 0) < expiry.SWEEP_EVERY_MS:
            return None
        self.swept[partition] = wm
        return wm - expiry.EXPIRY_MARGIN_MS


wallet_to_state = app.tables.add(
    StateTable(app, name="wallet_to_state", partitions=6, beacon=app.tables.beacon)
)


def hold(table: StateTable, touched: dict) -> None:
    """Keep each touched state (encoded) until ``write_held``; every read of the table sees
    it at once. ``touched`` maps key → (state, last event of that key)."""
    for key, (state, event) in touched.items():
        table.held[key] = (statecodec.encode(state), event, state)  # state: never changed again


def write_held(table: StateTable, held: dict, send) -> None:
    """Set each key of ``held`` (a copy of ``table.held`` taken before the outputs produced
    with those states were acknowledged), write its changelog record ourselves, forget the
    keys not held again since; then expire the keys due in the partitions written to.

    The record goes to the changelog partition of the key's event (as Faust would), through
    ``send(topic, key, value, partition)``: the agents' confluent-kafka producer, about 20x
    cheaper per record than Faust's own changelog send. The store is set directly (to the
    same bytes), so Faust does not send a second copy; recovery reads the same bytes back.
    """
    topic = table.changelog_topic.get_topic_name()
    store = table.data
    partitions = set()
    for key, entry in held.items():
        value, event, state = entry
        partition = event.message.partition
        store[key] = value
        send(topic, orjson.dumps(key), value, partition)
        table.expiry.written(key, partition, state)
        partitions.add(partition)
        if table.held.get(key) is entry:
            del table.held[key]
    for partition in partitions:
        now = table.expiry.sweep_time(partition)
        if now is not None:
            expire_partition(table, partition, now, send)


def expire_partition(table: StateTable, partition: int, now_ms: int, send) -> None:
    """Summarise or delete the wallets of ``partition`` that expire by event time ``now_ms``:
    the summary or a tombstone goes to the store and the changelog."""
    topic = table.changelog_topic.get_topic_name()
    store = table.data
    summaries, deleted = [], []
    for key, summary in expiry.sweep(table.expiry.wheel(partition), table.get, now_ms):
        store.pop(key, None)
        if summary is None:
            deleted.append(key)
            send(topic, orjson.dumps(key), None, partition)
        else:
            value = statecodec.encode(summary)
            summaries.append((key, partition, value))
            send(topic, orjson.dumps(key), value, partition)
        outcome = "deleted" if summary is None else "summarised"
        metrics.EXPIRED.labels(table.name, outcome).inc()
    table.summaries.delete(deleted)
    table.summaries.put(summaries)
