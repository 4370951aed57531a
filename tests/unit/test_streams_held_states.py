"""Held wallet states (streams/tables.py): a batch's states are held until its decisions are
acknowledged, then written in order."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from faust.types import TP

from processors import statecodec
from processors.state import WalletState
from streams.tables import Ownership, TableExpiry, hold, write_held

pytestmark = pytest.mark.unit


def table():
    """The parts of a ``StateTable`` these functions use (its store is a dict)."""
    return SimpleNamespace(held={}, data={}, expiry=TableExpiry(), owned=Ownership(),
                           changelog_topic=SimpleNamespace(get_topic_name=lambda: "changelog"))


def event(partition: int, topic: str = "purchases"):
    return SimpleNamespace(message=SimpleNamespace(partition=partition, tp=TP(topic, partition)))


def state(address: str, count: int) -> WalletState:
    wallet = WalletState(address=address)
    wallet.applied = [f"pur_{i}" for i in range(count)]
    return wallet


def test_held_states_are_written_with_their_changelog_record_and_then_forgotten() -> None:
    t, sent = table(), []
    hold(t, {"0xa": (state("0xa", 1), event(2)), "0xb": (state("0xb", 2), event(4))})
    write_held(t, dict(t.held), lambda *record: sent.append(record))
    assert t.held == {}
    assert statecodec.decode(t.data["0xa"]).applied == ["pur_0"]
    assert [(topic, key, partition) for topic, key, _, partition in sent] == [
        ("changelog", b'"0xa"', 2), ("changelog", b'"0xb"', 4)]  # fmt: skip
    assert sent[1][2] == t.data["0xb"]  # the store keeps the very bytes sent


def test_a_state_held_again_during_the_flush_stays_held_for_the_next_write() -> None:
    t, sent = table(), []
    hold(t, {"0xa": (state("0xa", 1), event(2))})
    snapshot = dict(t.held)  # taken before the flush
    hold(t, {"0xa": (state("0xa", 2), event(2))})  # the next batch, while the flush waits
    write_held(t, snapshot, lambda *record: sent.append(record))
    assert statecodec.decode(t.data["0xa"]).applied == ["pur_0"]  # what was acknowledged
    assert statecodec.decode(t.held["0xa"][0]).applied == ["pur_0", "pur_1"]  # still held
    write_held(t, dict(t.held), lambda *record: sent.append(record))
    assert statecodec.decode(t.data["0xa"]).applied == ["pur_0", "pur_1"] and t.held == {}
    assert len(sent) == 2
