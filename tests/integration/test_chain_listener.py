"""The chain listener against a real anvil node and the real Kafka broker: exact records of a
ticketing day, reorgs within and beyond the confirmation depth, and a resumed checkpoint."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import REGISTRY

from connectors.chain import ChainListener, ListenerConfig
from connectors.chain_checkpoint import Checkpoint
from connectors.chain_kafka import KafkaChainOutput
from connectors.chain_rpc import ChainRpc
from infra.evm import NodeHandle
from infra.settings import Settings
from tests.integration.chain_fixtures import (
    PRICE,
    TicketChain,
    Tx,
    anvil,  # noqa: F401 (fixture)
    checkpoints,
    security_events,
    transfers,
    wait_for,
)

pytestmark = pytest.mark.integration
ZERO = "0x" + "0" * 40


class Running:
    """A listener running in a thread; ``error`` holds what ended it, if anything."""

    def __init__(self, listener: ChainListener, output: KafkaChainOutput):
        self.listener, self.output = listener, output
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.listener.run()
        except BaseException as exc:
            self.error = exc

    def published_through(self, block: int) -> bool:
        assert self.error is None, f"listener died: {self.error!r}"
        return self.listener.last is not None and self.listener.last.block >= block

    def stop(self) -> None:
        self.listener.stop()
        self.thread.join(30)
        self.output.close()


@pytest.fixture
def listen(settings: Settings, anvil: NodeHandle) -> Iterator[Callable[..., Running]]:  # noqa: F811
    started: list[Running] = []

    def start(chain: TicketChain, confirmations: int = 2, **options: object) -> Running:
        config = ListenerConfig(
            chain_id=31337,
            contracts=frozenset(chain.addresses),
            confirmations=confirmations,
            poll_interval_s=0.05,
            **options,  # type: ignore[arg-type]
        )
        stop = threading.Event()
        output = KafkaChainOutput(settings, config.chain_id, config.name)
        rpc = ChainRpc(anvil.url, wait=stop.wait)
        started.append(Running(ChainListener(rpc, output, config, stop=stop), output))
        return started[-1]

    yield start
    for running in started:
        running.stop()


def _row(tx: Tx, contract: str, kind: str, token: int, sender: str, receiver: str, **kw) -> dict:
    standard = kw.get("standard", "ERC721")
    return {
        "block_number": tx.block_number,
        "block_hash": tx.block_hash,
        "tx_hash": tx.hash,
        "contract": contract,
        "standard": standard,
        "kind": kind,
        "token_id": str(token),
        "amount": str(kw.get("amount", 1)),
        "from_address": sender,
        "to_address": receiver,
        "price_wei": kw.get("price"),
    }


def _view(records: list[dict]) -> list[dict]:
    keys = ("block_number", "block_hash", "tx_hash", "contract", "standard", "kind")
    keys += ("token_id", "amount", "from_address", "to_address", "price_wei")
    return [{k: r[k] for k in keys} for r in records]


def test_a_ticketing_day_gives_exactly_these_records(settings: Settings, anvil, listen) -> None:  # noqa: F811
    chain = TicketChain(anvil.url)
    nft, passes = chain.addresses
    a, b, c, d, org = chain.alice, chain.bob, chain.carol, chain.dave, chain.organizer
    resale = 25 * 10**16
    buy1, buy2 = chain.buy(a), chain.buy(b)
    chain.list(a, 1, resale)
    resold = chain.buy_listed(c, 1, resale)
    moved, burnt, comp = chain.transfer(c, d, 1), chain.burn(b, 2), chain.mint_to(d)
    p1, p2 = chain.pass_mint(a, 7, 5), chain.pass_mint_batch(b, [7, 8], [2, 3])
    p3, p4 = chain.pass_transfer(a, c, 7, 2), chain.pass_transfer_batch(b, d, [7, 8], [1, 3])
    last = chain.head
    chain.mine(2)

    running = listen(chain, from_block=0)
    wait_for(lambda: running.published_through(last), what=f"block {last} published")
    price, p = str(PRICE), str(resale)
    expected = [
        _row(buy1, nft, "MINT", 1, ZERO, a),
        _row(buy1, nft, "SALE", 1, org, a, price=price),
        _row(buy2, nft, "MINT", 2, ZERO, b),
        _row(buy2, nft, "SALE", 2, org, b, price=price),
        _row(resold, nft, "TRANSFER", 1, a, c),
        _row(resold, nft, "SALE", 1, a, c, price=p),
        _row(moved, nft, "TRANSFER", 1, c, d),
        _row(burnt, nft, "BURN", 2, b, ZERO),
        _row(comp, nft, "MINT", 3, ZERO, d),
        _row(p1, passes, "MINT", 7, ZERO, a, standard="ERC1155", amount=5),
        _row(p2, passes, "MINT", 7, ZERO, b, standard="ERC1155", amount=2),
        _row(p2, passes, "MINT", 8, ZERO, b, standard="ERC1155", amount=3),
        _row(p3, passes, "TRANSFER", 7, a, c, standard="ERC1155", amount=2),
        _row(p4, passes, "TRANSFER", 7, b, d, standard="ERC1155", amount=1),
        _row(p4, passes, "TRANSFER", 8, b, d, standard="ERC1155", amount=3),
    ]
    records = transfers(settings)
    assert _view(records) == expected
    assert [r["_key"] for r in records] == [
        r["to_address"] if r["kind"] != "BURN" else r["from_address"] for r in records
    ]
    assert len({r["_id"] for r in records}) == len(records)
    assert all(r["chain_id"] == 31337 for r in records)
    assert checkpoints(settings)[-1].block >= last


def test_orphaned_blocks_within_the_confirmation_depth_are_never_published(
    settings: Settings,
    anvil,  # noqa: F811
    listen,
) -> None:
    chain = TicketChain(anvil.url)
    first = chain.buy(chain.alice)
    chain.mine(2)
    running = listen(chain, confirmations=2)
    wait_for(lambda: running.published_through(first.block_number), what="first sale")

    snapshot = chain.snapshot()
    orphan = chain.buy(chain.bob)  # head = orphan block; safe head = orphan - 2
    chain.mine(1)  # head = orphan + 1: the orphan is 1 deep, still under the depth
    wait_for(lambda: running.published_through(chain.head - 2), what="caught up to safe head")
    chain.revert(snapshot)  # the orphan block and the one after it are gone
    replacement = chain.buy(chain.carol)  # same height, another transaction and hash
    assert replacement.block_number == orphan.block_number
    assert replacement.block_hash != orphan.block_hash
    chain.mine(2)
    wait_for(lambda: running.published_through(replacement.block_number), what="replacement")

    records = transfers(settings)
    assert orphan.hash not in {r["tx_hash"] for r in records}
    assert orphan.block_hash not in {r["block_hash"] for r in records}
    assert [(r["kind"], r["to_address"]) for r in records if r["tx_hash"] == replacement.hash] == [
        ("MINT", chain.carol),
        ("SALE", chain.carol),
    ]
    assert security_events(settings) == []


def test_reorg_beyond_the_depth_rewinds_reports_and_republishes(
    settings: Settings,
    anvil,  # noqa: F811
    listen,
) -> None:
    chain = TicketChain(anvil.url)
    chain.mine(1)
    snapshot = chain.snapshot()
    orphan = chain.buy(chain.bob)
    chain.mine(1)
    running = listen(chain, confirmations=1, from_block=0)
    wait_for(lambda: running.published_through(orphan.block_number), what="orphan published")

    chain.revert(snapshot)  # deeper than 1 confirmation: the orphan was already published
    replacement = chain.buy(chain.carol)
    chain.mine(3)
    wait_for(lambda: running.published_through(replacement.block_number + 2), what="new chain")

    [event] = security_events(settings)
    assert (event["kind"], event["severity"], event["source"]) == (
        "chain_reorg",
        "HIGH",
        "listener",
    )
    assert event["details"]["orphaned_from"] == str(orphan.block_number)
    records = transfers(settings)
    replaced = [(r["kind"], r["block_hash"]) for r in records if r["tx_hash"] == replacement.hash]
    assert replaced == [("MINT", replacement.block_hash), ("SALE", replacement.block_hash)]
    # the rewound checkpoint was committed before the canonical blocks were published again
    marks = checkpoints(settings)
    rewind = next(i for i in range(1, len(marks)) if marks[i].block < marks[i - 1].block)
    assert marks[rewind].block < orphan.block_number <= marks[rewind - 1].block
    assert marks[-1] == Checkpoint(running.listener.last.block, running.listener.last.hash)
    assert REGISTRY.get_sample_value(
        "sentinel_chain_reorgs_total", {"chain": "31337", "listener": "default"}) >= 1  # fmt: skip
