"""Settling held wallet states (streams/agents.py): a batch's states are written once every
output produced before them is acknowledged; when the producer has nothing outstanding when
the next batch begins, that batch writes them itself, with no thread hop and no task."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from processors import statecodec
from processors.state import WalletState
from streams import agents
from streams.context import ctx
from streams.outputs import Outputs
from streams.tables import TableExpiry, hold

pytestmark = pytest.mark.unit


class Producer:
    """A confluent-kafka producer's ``poll``, ``len`` and ``flush``: ``outstanding`` records
    are acknowledged once served by a poll with ``served`` set, or by a flush."""

    def __init__(self, outstanding: int = 0, served: bool = True) -> None:
        self.outstanding, self.served, self.polls, self.flushes = outstanding, served, 0, 0

    def poll(self, timeout: float) -> int:
        self.polls += 1
        if self.served:
            self.outstanding = 0
        return 0

    def __len__(self) -> int:
        return self.outstanding

    def flush(self, timeout: float) -> int:
        self.flushes += 1
        self.outstanding = 0
        return 0


def outputs(producer: Producer, sent: list | None = None) -> Outputs:
    out = Outputs.__new__(Outputs)  # no registry, no broker: only what settling uses
    out.producer, out.deliveries = producer, SimpleNamespace(failed=[])  # type: ignore[assignment]
    out.send_raw = lambda *record: (sent if sent is not None else []).append(record)  # type: ignore[method-assign]
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
    t = SimpleNamespace(held={}, data={}, expiry=TableExpiry(), changelog_topic=changelog)
    monkeypatch.setattr(agents, "wallet_to_state", t)
    return t


def use(monkeypatch, producer: Producer) -> list:
    """``ctx.outputs`` on ``producer``; the changelog records it is given."""
    sent: list = []
    monkeypatch.setitem(vars(ctx), "outputs", outputs(producer, sent))
    return sent


def test_delivered_serves_the_reports_due_and_counts_what_is_outstanding() -> None:
    assert outputs(Producer(3)).delivered()  # acknowledged, reports served by the poll
    assert not outputs(Producer(3, served=False)).delivered()
    failed = outputs(Producer())
    failed.deliveries.failed = ["decisions: broker down"]
    assert not failed.delivered()  # flush raises it


def test_acknowledged_states_are_written_by_the_next_batch_itself(table, monkeypatch) -> None:
    producer = Producer(2)
    sent = use(monkeypatch, producer)
    hold(table, {"0xa": (state("0xa", 1), event(2)), "0xb": (state("0xb", 1), event(4))})
    acknowledged = agents.acknowledged_states()  # the next batch begins: all delivered
    assert acknowledged == table.held
    hold(table, {"0xb": (state("0xb", 2), event(4))})  # the batch holds 0xb again
    monkeypatch.setattr(agents, "settle_soon", lambda: pytest.fail("no task needed"))
    agents.settle_after(acknowledged)
    assert statecodec.decode(table.data["0xa"]).applied == ["pur_0"]
    assert [key for _, key, _, _ in sent] == [b'"0xa"']  # 0xb's older state: not written
    assert list(table.held) == ["0xb"]
    assert statecodec.decode(table.held["0xb"][0]).applied == ["pur_0", "pur_1"]
    assert producer.flushes == 0


def test_states_not_yet_acknowledged_are_settled_in_the_background(table, monkeypatch) -> None:
    producer = Producer(2, served=False)
    use(monkeypatch, producer)
    hold(table, {"0xa": (state("0xa", 1), event(2))})

    async def batch() -> None:
        acknowledged = agents.acknowledged_states()
        assert acknowledged is None
        agents.settle_after(acknowledged)
        assert table.held and not table.data  # written only once flushed
        await asyncio.gather(*agents._settles)

    asyncio.run(batch())
    assert producer.flushes == 1 and table.held == {}
    assert statecodec.decode(table.data["0xa"]).applied == ["pur_0"]


def test_no_state_is_taken_while_a_settle_is_under_way(table, monkeypatch) -> None:
    use(monkeypatch, Producer())
    hold(table, {"0xa": (state("0xa", 1), event(2))})

    async def batch() -> None:
        async with agents._settling:
            assert agents.acknowledged_states() is None

    asyncio.run(batch())
    assert agents.acknowledged_states() is not None


def test_a_settle_with_everything_acknowledged_needs_no_flush(table, monkeypatch) -> None:
    producer = Producer(1)
    use(monkeypatch, producer)
    hold(table, {"0xa": (state("0xa", 1), event(2))})
    asyncio.run(agents.settle())
    assert producer.flushes == 0 and table.held == {} and "0xa" in table.data
