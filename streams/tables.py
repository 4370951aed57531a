"""Faust tables: per-wallet state and per-entity state, changelog-backed.

A table's name is its changelog topic's name (``<app>-<table>-changelog``): renaming one
drops its state, so these names are fixed.

- ``wallet_to_state``: one ``WalletState`` per wallet. Written by the agents of the
  wallet-keyed topics (purchases, auth events, chain transfers), which are co-partitioned.
- ``entity_to_state``: one state per "ip:…", "device:…", "card:…" or "show:…" key, written
  only by ``track_entities`` from the entity repartition topic (one writer per key) and read
  by ``score_purchases``. A worker reads the partitions it owns and those it keeps as standby
  replicas (``table_standby_replicas``, default 1): reads are complete with up to
  replicas + 1 workers. Not a Faust GlobalTable: with faust-streaming 0.15 a worker restarted
  after a crash skipped its stream partitions to their end when a global table was present
  (tests/integration/test_worker_restart.py caught it).

Values are kept encoded (the changelog bytes, orjson of ``to_dict()``) and decoded when a
batch reads them: an idle wallet costs its ~0.5 KB of JSON instead of ~5 KB of Python objects
(measured: 2.1 GB resident for 450 000 wallets with objects), and every read gets its own
copy, so a batch can change it freely.
"""

from __future__ import annotations

import faust
import orjson

from processors.state import EntityState, ShowState, WalletState
from streams.app import app


def encode_wallet(state: WalletState) -> bytes:
    return orjson.dumps(state.to_dict())


def decode_wallet(data: bytes) -> WalletState:
    return WalletState.from_dict(orjson.loads(data))


def encode_entity(state: EntityState | ShowState) -> bytes:
    """Tagged by type: shows keep prices and popularity, the others wallets."""
    tag = "show" if isinstance(state, ShowState) else "entity"
    return orjson.dumps({"t": tag, "s": state.to_dict()})


def decode_entity(data: bytes) -> EntityState | ShowState:
    doc = orjson.loads(data)
    return (ShowState if doc["t"] == "show" else EntityState).from_dict(doc["s"])


class StateTable(faust.Table):
    """A table of encoded states: JSON keys, raw bytes values. Faust derives a table's
    serializers from ``value_type`` and builds the changelog topic with them when the table is
    registered, so they are set here, before registration; recovery reads with them too."""

    def __init__(self, app, **kwargs):
        super().__init__(app, **kwargs)
        self.key_serializer = "json"
        self.value_serializer = "raw"


wallet_to_state = app.tables.add(
    StateTable(app, name="wallet_to_state", partitions=6, beacon=app.tables.beacon)
)
entity_to_state = app.tables.add(
    StateTable(app, name="entity_to_state", partitions=6, beacon=app.tables.beacon)
)


def read_wallet(address: str) -> WalletState:
    data = wallet_to_state.get(address)
    return decode_wallet(data) if data is not None else WalletState(address=address)


def read_entity(key: str) -> EntityState | ShowState | None:
    data = entity_to_state.get(key)
    return decode_entity(data) if data is not None else None


def write_back(table, touched: dict, send) -> None:
    """Set each touched key once, and write its changelog record ourselves.

    ``touched`` maps key → (state, last event of that key). The record goes to the changelog
    partition of the key's event (as Faust would), through ``send(topic, key, value,
    partition)`` — the agents' confluent-kafka producer, flushed with the batch's decisions
    before Faust commits the batch: about 20x cheaper per record than Faust's own changelog
    send, and the state is durable before the offsets are. The store is set directly, so
    Faust does not send a second copy; recovery reads these records into the same bytes.
    """
    topic = table.changelog_topic.get_topic_name()
    encode = encode_wallet if table is wallet_to_state else encode_entity
    store = table.data
    for key, (state, event) in touched.items():
        data = encode(state)
        store[key] = data
        send(topic, orjson.dumps(key), data, event.message.partition)
