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
once the outputs produced with them are acknowledged (``streams/agents.settle``, or the next
batch's ``settle_after_batch``), and every
offset commit and every rebalance settles first.

Expiry: each table partition has a watermark (the largest event time of the wallets written
to it) and an ``ExpiryWheel`` of its keys. Every ``SWEEP_EVERY_MS`` of watermark, the keys due
are handed to ``processors.expiry.sweep_read`` (read at once by ``read_due``, which decodes
only the wallets whose watermark says expiry may change them): a summary replaces the value
and is written to the changelog; a deleted wallet is removed and a tombstone (value None)
written, so the compacted changelog shrinks with the table and a restarted worker does not
bring the wallet back.

Memory holds the active wallets only: a sweep also moves each wallet idle for
``MEMORY_IDLE_MS`` of event time, as it is, to ``StateTable.disk``, a private SQLite file
(``streams/disk_store.py``), where the summaries go too; a read looks in the held states,
then in memory, then there. Recovery puts every recovered wallet there, so a restarted
worker's memory fills with the wallets it writes, however many ever bought.

Owned partitions: once this worker has written a partition's wallets in the current
assignment (its recovery was done by then), it is their only writer, and a changelog record
of that partition applied later is never newer than what the worker has: its own echo, or the
previous owner's last write arriving late, whose purchases were not committed and come back to
this worker (``streams/redelivery.py``). Faust does apply such records: it keeps a table's
changelog records, of active and standby partitions alike, in one buffer, applied when it
holds ``recovery_buffer_size`` of them or at the next revocation, so a record fetched past the
highwater recovery read to waits there. Applied, it took a newer state out of memory and left
its older one on disk (test_scale_out, 1 run in 35: a purchase decided with its wallet's
previous purchase missing). ``apply_changelog_batch`` leaves out the partitions ``Ownership``
names.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import cast

import faust
import orjson

from infra.settings import get_settings
from processors import expiry, statecodec
from processors.timeutil import HOUR_MS
from streams import metrics
from streams.app import app
from streams.disk_store import DiskStore

# A wallet not written for this long (event time) leaves memory at the next sweep (1 M
# purchases over 30 days: 36 % of purchases come from a wallet idle 1-7 days, which memory
# kept before; one read from disk each, ~10 us).
MEMORY_IDLE_MS = HOUR_MS

_MISSING = object()


def _memory(store) -> dict:
    """The dict behind a table's store: Faust's memory store keeps its values in ``.data``
    (a plain dict, used as is in tests)."""
    return store if isinstance(store, dict) else store.data


class StateTable(faust.Table):
    """JSON keys, raw byte values decoded on read (``statecodec``). Faust derives a table's
    serializers from ``value_type`` and builds the changelog topic with them when the table is
    registered, so they are set here, before registration; recovery reads with them too."""

    def __init__(self, app, **kwargs):
        super().__init__(app, **kwargs)
        self.key_serializer = "json"
        self.value_serializer = "raw"
        self.expiry = TableExpiry()
        self.owned = Ownership()
        self.held: dict = {}  # key -> (bytes, event, state): not yet written (``hold``)
        self.fetched: dict | None = None  # key -> disk value or None, within ``reading``

    @cached_property
    def disk(self) -> DiskStore:
        """Idle wallets and summaries, on local disk (``streams/disk_store.py``)."""
        return DiskStore(get_settings().stream.data_dir / "wallets")

    def get(self, key, default=None):
        """``self[key]`` (held, memory, then disk), or ``default``: a miss (every new wallet)
        raises and catches no ``KeyError`` on the way."""
        held = self.held.get(key)
        if held is not None:
            return statecodec.decode(held[0])
        self.on_key_get(key)  # Faust's table sensors, as its own ``__getitem__`` calls them
        value = _memory(self.data).get(key)
        if value is None:
            fetched = self.fetched
            value = fetched[key] if fetched is not None and key in fetched else self.disk.get(key)
            if value is None:
                return default
        return statecodec.decode(value) if isinstance(value, bytes) else value

    @contextmanager
    def reading(self, keys: Iterable) -> Iterator[StateTable]:
        """Within, ``get`` finds what the disk store holds of ``keys`` (those neither held nor
        in memory) read by one query per ``GET_MANY_CHUNK`` keys beforehand, not by one query
        each (~6 against ~15 us a wallet, ~2 against ~9 us a miss, measured): a batch's
        wallets, read while nothing writes the table (``scoring.score`` runs without
        awaiting; writes happen in ``write_held`` and sweeps, between batches)."""
        held, memory = self.held, _memory(self.data)
        absent = [key for key in dict.fromkeys(keys) if key not in held and key not in memory]
        fetched = dict.fromkeys(absent)
        if absent:
            fetched.update(self.disk.get_many(absent))
        self.fetched = fetched
        try:
            yield self
        finally:
            self.fetched = None

    def __getitem__(self, key):
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def apply_changelog_batch(self, batch) -> None:
        """Recovery: the latest value of each key goes to the disk store, out of memory
        (tombstones delete); each key is filed in its partition's wheel by its due time.
        Records of the partitions this worker owns are left out: what it has is newer."""
        latest = {}
        for event in batch:
            latest[self._to_key(event.key)] = event
        owned = self.owned.partitions
        rows, deleted = [], []
        for key, event in latest.items():
            value, partition = event.message.value, event.message.partition
            if partition in owned:
                continue
            self.data.pop(key, None)  # a value from before the partition was revoked
            if value is None:
                deleted.append(key)
                continue
            rows.append((key, partition, value))
            self.expiry.wheel(partition).file(key, expiry.due_ms(statecodec.decode(value)))
        self.disk.delete(deleted)
        self.disk.put(rows)

    async def on_rebalance(self, assigned, revoked, newly_assigned, generation_id=0) -> None:
        """A new assignment: the partitions owned stay owned while they are still active
        (``Ownership.reassigned``)."""
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)
        topic = self.changelog_topic.get_topic_name()
        active = {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic}
        self.owned.reassigned(active, generation_id)

    async def on_recovery_completed(self, active_tps, standby_tps) -> None:
        """Memory and the disk store forget the partitions no longer assigned (as Faust's
        store does): their next owner recovers them from the changelog."""
        await super().on_recovery_completed(active_tps, standby_tps)
        assigned = {tp.partition for tp in active_tps | standby_tps}
        for key in self.expiry.forget_partitions(assigned):
            self.data.pop(key, None)
        self.disk.keep_partitions(assigned)


@dataclass
class Ownership:
    """The partitions this worker alone writes: active in this assignment and written since
    it began (the agents write a partition only once its recovery is done and its records
    come), through consecutive generations. A generation missed (the worker left the group
    and came back) may have given them to another worker, whose writes the next recovery
    must apply: then none is owned until written again."""

    active: set[int] = field(default_factory=set)
    partitions: set[int] = field(default_factory=set)
    generation: int | None = None

    def reassigned(self, active: set[int], generation: int) -> None:
        consecutive = self.generation is not None and generation == self.generation + 1
        self.partitions = self.partitions & active if consecutive else set()
        self.active, self.generation = active, generation

    def wrote(self, partition: int) -> None:
        if partition in self.active:
            self.partitions.add(partition)


@dataclass
class TableExpiry:
    """Per partition: the watermark, when it was last swept, the keys by due time, and the
    keys in memory (key -> its watermark when last written, in order of last write)."""

    watermarks: dict[int, int] = field(default_factory=dict)
    swept: dict[int, int] = field(default_factory=dict)
    wheels: dict[int, expiry.ExpiryWheel] = field(default_factory=dict)
    in_memory: dict[int, dict] = field(default_factory=dict)

    def wheel(self, partition: int) -> expiry.ExpiryWheel:
        if partition not in self.wheels:
            self.wheels[partition] = expiry.ExpiryWheel()
        return self.wheels[partition]

    def written(self, key, partition: int, state) -> None:
        self.wheel(partition).file(key, expiry.due_ms(state))
        if state.watermark_ms > self.watermarks.get(partition, 0):
            self.watermarks[partition] = state.watermark_ms
        keys = self.in_memory.setdefault(partition, {})
        keys.pop(key, None)
        keys[key] = state.watermark_ms  # (re)inserted: the dict stays in order of last write

    def idle(self, partition: int, until_ms: int) -> list:
        """Take the keys in memory last written with a watermark at or before ``until_ms``,
        oldest writes first, up to the first newer one (no state is decoded)."""
        keys = self.in_memory.get(partition, {})
        idle = []
        for key, watermark in keys.items():
            if watermark > until_ms:
                break
            idle.append(key)
        for key in idle:
            del keys[key]
        return idle

    def forget_partitions(self, assigned: set[int]) -> list:
        """The keys in memory of partitions not in ``assigned``, forgotten."""
        gone = [p for p in self.in_memory if p not in assigned]
        return [key for p in gone for key in self.in_memory.pop(p)]

    def sweep_time(self, partition: int) -> int | None:
        """The event time to sweep ``partition`` at, when a sweep is due."""
        wm = self.watermarks.get(partition, 0)
        if wm - self.swept.get(partition, 0) < expiry.SWEEP_EVERY_MS:
            return None
        self.swept[partition] = wm
        return wm - expiry.EXPIRY_MARGIN_MS


wallet_to_state = cast(StateTable, app.tables.add(
    StateTable(app, name="wallet_to_state", partitions=6, beacon=app.tables.beacon)
))  # fmt: skip


def hold(table: StateTable, touched: dict) -> None:
    """Keep each touched state (encoded) until ``write_held``; every read of the table sees
    it at once. ``touched`` maps key → (state, last event of that key)."""
    for key, (state, event) in touched.items():
        table.held[key] = (statecodec.encode(state), event, state)  # state: never changed again


def write_held(table: StateTable, held: dict, send) -> None:
    """Set each key of ``held`` (a copy of ``table.held`` taken before the outputs produced
    with those states were acknowledged), write its changelog record ourselves, forget the
    keys not held again since; then expire the keys due in the partitions written to, which
    this worker owns from now on (``Ownership``).

    The record goes to the changelog partition of the key's event (as Faust would), through
    ``send(topic, key, value, partition)``: the agents' confluent-kafka producer, about 20x
    cheaper per record than Faust's own changelog send. The store is set directly (to the
    same bytes), so Faust does not send a second copy; recovery reads the same bytes back.
    """
    topic = table.changelog_topic.get_topic_name()
    store = _memory(table.data)  # Faust's store adds nothing to a set but a call
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
        table.owned.wrote(partition)
        now = table.expiry.sweep_time(partition)
        if now is not None:
            expire_partition(table, partition, now, send)


def expire_partition(table: StateTable, partition: int, now_ms: int, send) -> None:
    """Summarise or delete the wallets of ``partition`` that expire by event time ``now_ms``
    (the summary or a tombstone goes to the changelog and the disk store), and move the
    wallets not written for ``MEMORY_IDLE_MS`` from memory to the disk store as they are."""
    topic = table.changelog_topic.get_topic_name()
    store = _memory(table.data)
    rows, deleted = [], []
    wheel = table.expiry.wheel(partition)
    changes = expiry.sweep_read(wheel, lambda keys: read_due(table, keys, now_ms), now_ms)
    for key, summary in changes:
        store.pop(key, None)
        value = None if summary is None else statecodec.encode(summary)
        send(topic, orjson.dumps(key), value, partition)
        if value is None:
            deleted.append(key)
        else:
            rows.append((key, partition, value))
    for outcome, count in (("deleted", len(deleted)), ("summarised", len(changes) - len(deleted))):
        if count:
            metrics.EXPIRED.labels(table.name, outcome).inc(count)
    for key in table.expiry.idle(partition, now_ms - MEMORY_IDLE_MS):
        value = store.pop(key, None)
        if value is not None:
            rows.append((key, partition, value))
    table.disk.delete(deleted)
    table.disk.put(rows)


def read_due(table: StateTable, keys: list, now_ms: int) -> list:
    """(key, wallet) for the ``keys`` due in a sweep at ``now_ms``, in their order, as
    ``table.get`` reads them (held, memory, then disk: one query for all the keys not in
    memory), leaving out the keys without a value and the stored values that
    ``expiry.may_change`` says no to by their watermark alone, undecoded. Such a value was
    filed by its ``due_ms`` when it was stored (``write_held``, a sweep, recovery), in a
    bucket after ``now_ms``, so ``expiry.sweep_read`` may leave it out. A held state is not
    filed yet: it is always decoded and returned."""
    held, memory = table.held, _memory(table.data)
    values = {}
    absent = []
    for key in keys:
        entry = held.get(key)
        value = entry[0] if entry is not None else memory.get(key)
        if value is None:
            absent.append(key)
        else:
            values[key] = value
    if absent:
        values.update(table.disk.get_many(absent))
    items = []
    for key in keys:
        value = values.get(key)
        if value is None:
            continue
        if not isinstance(value, bytes):
            items.append((key, value))
            continue
        if key not in held:
            watermark = statecodec.watermark_ms(value)
            if watermark is not None and not expiry.may_change(watermark, now_ms):
                continue
        items.append((key, statecodec.decode(value)))
    return items
