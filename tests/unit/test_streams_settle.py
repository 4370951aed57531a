"""Settling held wallet states (streams/agents.py): a batch's states are written once every
output produced before them is acknowledged. When the previous batch's outputs are all
acknowledged by the end of the next batch (``Outputs.delivered`` with the mark taken after
them), that batch writes them itself, with no thread hop and no task."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from infra.producing import Deliveries
from processors import statecodec
from processors.state import WalletState
from streams import agents
from streams.context import ctx
from streams.outputs import Outputs
from streams.tables import Ownership, TableExpiry, hold
from tests.support.http import until

pytestmark = pytest.mark.unit


class Producer:
    """A confluent-kafka producer: ``produce`` keeps each record's report, ``ack`` lets the
    broker acknowledge the first ``n`` records (or one record, by topic) and ``poll`` or
    ``flush`` serves the reports of acknowledged ones (``flush``: all of them)."""

    def __init__(self) -> None:
        self.records: list = []  # [topic, key, report, acknowledged]
        self.flushes = 0

    def produce(self, topic, value, key, partition=-1, headers=None, on_delivery=None) -> None:
        self.records.append([topic, key, on_delivery, False])

    def ack(self, topic: str | None = None) -> None:
        for record in self.records:
            if topic is None or record[0] == topic:
                record[3] = True

    def poll(self, timeout: float) -> int:
        served = [r for r in self.records if r[3]]
        self.records = [r for r in self.records if not r[3]]
        for topic, _, report, _ in served:
            report(None, SimpleNamespace(topic=lambda topic=topic: topic))
        return len(served)

    def __len__(self) -> int:
        return len(self.records)

    def flush(self, timeout: float) -> int:
        self.flushes += 1
        self.ack()
        self.poll(0)
        return 0


def outputs(producer: Producer) -> Outputs:
    out = Outputs.__new__(Outputs)  # no registry, no broker: only what settling uses
    out.producer = producer  # type: ignore[assignment]
    out.deliveries = Deliveries(producer)  # type: ignore[arg-type]
    out._marks()
    return out


def event(partition: int):
    return SimpleNamespace(message=SimpleNamespace(partition=partition))


def state(address: str, count: int) -> WalletState:
    wallet = WalletState(address=address)
    wallet.applied = [f"pur_{i}" for i in range(count)]
    return wallet


@pytest.fixture
def table(monkeypatch):
    changelog = SimpleNamespace(get_topic_name=lambda: "changelog")
    t = SimpleNamespace(held={}, data={}, expiry=TableExpiry(), owned=Ownership(),
                        changelog_topic=changelog)
    monkeypatch.setattr(agents, "wallet_to_state", t)
    monkeypatch.setattr(agents, "_unsettled", None)
    return t


@pytest.fixture
def producer(monkeypatch) -> Producer:
    producer = Producer()
    monkeypatch.setitem(vars(ctx), "outputs", outputs(producer))
    return producer


def batch(t, states: dict, decisions: int = 1) -> None:
    """A batch: its decisions produced, its states held, then ``settle_after_batch``."""
    for _ in range(decisions):
        ctx.outputs.send_raw("decisions", b"k", b"v", 0)
    hold(t, states)
    agents.settle_after_batch()


def changelog_keys(producer: Producer) -> list:
    return [key for topic, key, _, _ in producer.records if topic == "changelog"]


def test_delivered_to_a_mark_counts_only_the_records_produced_before_it(producer) -> None:
    out = ctx.outputs
    out.send_raw("decisions", b"a", b"v", 0)
    mark = out.mark()
    out.send_raw("changelog", b"b", b"v", 0)
    assert not out.delivered(mark) and not out.delivered()
    producer.ack("decisions")
    assert out.delivered(mark) and not out.delivered()  # the changelog record is after it
    producer.ack()
    assert out.delivered()


def test_a_failed_record_is_not_delivered(producer) -> None:
    out = ctx.outputs
    out.send_raw("decisions", b"a", b"v", 0)
    mark = out.mark()
    producer.records[0][2](RuntimeError("broker down"), SimpleNamespace(topic=lambda: "d"))
    producer.records.clear()
    assert not out.delivered(mark)  # flush raises it


def test_the_previous_batch_s_states_are_written_by_the_next_batch_itself(
        table, producer, monkeypatch) -> None:  # fmt: skip
    monkeypatch.setattr(agents, "settle_soon", lambda: pytest.fail("no task needed"))

    async def batches() -> None:
        batch(table, {"0xa": (state("0xa", 1), event(2)), "0xb": (state("0xb", 1), event(4))})
        assert not table.data and len(table.held) == 2  # kept for the next batch
        producer.ack()  # the broker acknowledges the first batch's decisions
        batch(table, {"0xb": (state("0xb", 2), event(4))})  # holds 0xb again
        assert statecodec.decode(table.data["0xa"]).applied == ["pur_0"]
        assert changelog_keys(producer) == [b'"0xa"']  # 0xb's older state: not written
        assert statecodec.decode(table.held["0xb"][0]).applied == ["pur_0", "pur_1"]
        producer.ack("decisions")  # the changelog record need not be: it came after the mark
        batch(table, {})
        assert statecodec.decode(table.data["0xb"]).applied == ["pur_0", "pur_1"]
        assert table.held == {}

    asyncio.run(batches())  # within IDLE_SETTLE_S of one another: no idle settle
    assert producer.flushes == 0


def test_the_last_batch_s_states_are_settled_when_no_batch_follows(table, producer) -> None:
    async def batches() -> None:
        batch(table, {"0xa": (state("0xa", 1), event(2))})
        assert not table.data
        await until(lambda: agents._unsettled is None, "no idle settle began", timeout_s=2.0)
        await asyncio.gather(*agents._settles)

    asyncio.run(batches())
    assert producer.flushes == 1 and table.held == {} and "0xa" in table.data
    assert agents._unsettled is None


def test_states_whose_decisions_are_not_acknowledged_are_settled_in_the_background(
        table, producer) -> None:  # fmt: skip
    async def batches() -> None:
        batch(table, {"0xa": (state("0xa", 1), event(2))})
        batch(table, {"0xb": (state("0xb", 1), event(4))})  # the first not acknowledged
        assert len(table.held) == 2 and not table.data  # written once flushed
        await asyncio.gather(*agents._settles)

    asyncio.run(batches())
    assert producer.flushes == 1 and table.held == {} and set(table.data) == {"0xa", "0xb"}
    assert agents._unsettled is None


def test_nothing_is_written_at_once_while_a_settle_is_under_way(table, producer) -> None:
    async def batches() -> None:
        batch(table, {"0xa": (state("0xa", 1), event(2))})
        producer.ack()
        async with agents._settling:
            batch(table, {"0xb": (state("0xb", 1), event(4))})
            assert not table.data  # a settle is queued behind the lock instead
        await asyncio.gather(*agents._settles)

    asyncio.run(batches())
    assert set(table.data) == {"0xa", "0xb"} and table.held == {}


def test_a_settle_with_everything_acknowledged_needs_no_flush(table, producer) -> None:
    hold(table, {"0xa": (state("0xa", 1), event(2))})
    asyncio.run(agents.settle())
    assert producer.flushes == 0 and table.held == {} and "0xa" in table.data


def test_at_a_revocation_the_held_states_are_written_and_acknowledged(table, producer) -> None:
    hold(table, {"0xa": (state("0xa", 1), event(2))})
    asyncio.run(agents.settle_revoked(None, set()))
    assert table.held == {} and "0xa" in table.data
    assert len(producer) == 0  # the changelog record too: the next owner recovers it
