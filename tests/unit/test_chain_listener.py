"""The listener's round logic over an in-memory chain (no servers): where it starts, how far
it reads, when it stops, and what it does when the chain changes under it."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from connectors.chain import ChainListener, ChainMoved, ListenerConfig
from connectors.chain_checkpoint import Checkpoint
from connectors.chain_decode import TRANSFER, Block, Log
from connectors.chain_rpc import (
    BlockNotFound,
    RetryPolicy,
    RpcRangeTooLarge,
    RpcRateLimited,
    RpcUnavailable,
    classify_error,
)

pytestmark = pytest.mark.unit
NFT = "0x" + "ab" * 20
ALICE = "0x" + "a1" * 20


def _word(address: str) -> str:
    return "0x" + address[2:].rjust(64, "0")


class Chain:
    """Blocks on one fork; ``fork(n, tag)`` replaces blocks from ``n`` on with another fork."""

    def __init__(self, height: int):
        self.blocks: list[Block] = []
        self.minted: dict[int, int] = {}  # block number -> token id minted there
        self.extend(height + 1, "a")

    def extend(self, count: int, tag: str) -> None:
        for _ in range(count):
            number = len(self.blocks)
            parent = self.blocks[-1].hash if self.blocks else "0x" + "00" * 32
            self.blocks.append(Block(number, f"0x{tag}{number:063x}", parent, 1000 + number))

    def fork(self, at: int, tag: str) -> None:
        height = len(self.blocks)
        del self.blocks[at:]
        self.extend(height - at + 1, tag)

    def block_number(self) -> int:
        return len(self.blocks) - 1

    def block(self, number: int) -> Block:
        if number >= len(self.blocks):
            raise BlockNotFound("eth_getBlockByNumber", str(number))
        return self.blocks[number]

    def blocks_(self, start: int, end: int) -> list[Block]:
        return [self.block(n) for n in range(start, end + 1)]

    def logs(self, start: int, end: int, addresses: Sequence[str], topics: Sequence[str]):
        return [
            Log(
                NFT,
                (TRANSFER, _word("0x" + "0" * 40), _word(ALICE), hex(token)),
                "0x",
                number,
                self.blocks[number].hash,
                "0x" + "ee" * 32,
                0,
                0,
            )
            for number, token in self.minted.items()
            if start <= number <= end
        ]


class Rpc:
    def __init__(self, chain: Chain):
        self.chain = chain
        self.block_number, self.block, self.logs = chain.block_number, chain.block, chain.logs
        self.blocks = chain.blocks_


class Output:
    def __init__(self, checkpoint: Checkpoint | None = None):
        self.checkpoint = checkpoint
        self.rounds: list[tuple[list[dict], Checkpoint, list[dict]]] = []

    def load_checkpoint(self) -> Checkpoint | None:
        return self.checkpoint

    def commit(self, records: Sequence[dict], checkpoint: Checkpoint, events=()) -> None:
        self.rounds.append((list(records), checkpoint, list(events)))
        self.checkpoint = checkpoint

    def close(self) -> None:
        pass


def listener(chain: Chain, output: Output, **options) -> ChainListener:
    config = ListenerConfig(chain_id=1, contracts=frozenset({NFT}), poll_interval_s=0, **options)
    return ChainListener(Rpc(chain), output, config)  # type: ignore[arg-type]


def test_without_checkpoint_it_starts_at_the_safe_head() -> None:
    chain, output = Chain(10), Output()
    listener(chain, output, confirmations=3).run(once=True)
    assert [c.block for _, c, _ in output.rounds] == [7]


def test_backfill_reads_bounded_rounds_and_stops_at_to_block() -> None:
    chain, output = Chain(30), Output()
    chain.minted = {4: 1, 9: 2}
    listener(chain, output, from_block=2, to_block=12, max_blocks_per_round=5).run()
    assert [c.block for _, c, _ in output.rounds] == [6, 11, 12]
    assert [r["token_id"] for records, _, _ in output.rounds for r in records] == ["1", "2"]


def test_a_checkpoint_wins_over_from_block_so_a_restart_resumes() -> None:
    chain = Chain(20)
    output = Output(Checkpoint(8, chain.blocks[8].hash))
    listener(chain, output, from_block=0, confirmations=0, max_blocks_per_round=100).run(once=True)
    assert [c.block for _, c, _ in output.rounds] == [20]


def test_nothing_past_the_confirmation_depth_is_read() -> None:
    chain, output = Chain(10), Output()
    follower = listener(chain, output, confirmations=3, from_block=0)
    follower.poll()
    chain.extend(2, "a")
    follower.poll()
    assert [c.block for _, c, _ in output.rounds] == [7, 9]
    assert follower.poll() == 0


def test_a_log_from_another_fork_makes_the_round_read_again() -> None:
    chain, output = Chain(10), Output()
    chain.minted = {5: 1}
    original = chain.logs
    chain_logs = original(0, 10, [], [])
    moved = [Log(**{**{s: getattr(chain_logs[0], s) for s in Log.__slots__}, "block_hash": "0xff"})]
    follower = listener(chain, output, confirmations=0, from_block=0)
    follower.rpc.logs = lambda *a: moved  # type: ignore[method-assign]
    with pytest.raises(ChainMoved):
        follower.poll()
    assert output.rounds == []


def test_a_reorg_deeper_than_the_depth_rewinds_to_the_fork_and_reports_it() -> None:
    chain, output = Chain(10), Output()
    follower = listener(chain, output, confirmations=2, from_block=0)
    follower.poll()  # published 0..8
    chain.fork(6, "b")  # blocks 6.. replaced: 6, 7, 8 were published
    chain.extend(1, "b")
    follower.poll()
    records, rewound, [event] = output.rounds[-1]
    assert records == [] and rewound == Checkpoint(5, chain.blocks[5].hash)
    assert event["kind"] == "chain_reorg" and event["details"]["orphaned_from"] == "6"
    follower.poll()
    safe = chain.block_number() - 2
    assert output.rounds[-1][1] == Checkpoint(safe, chain.blocks[safe].hash)


@pytest.mark.parametrize(
    ("method", "error", "kind"),
    [
        (
            "eth_getLogs",
            {"code": -32005, "message": "query returned more than 10000 results"},
            RpcRangeTooLarge,
        ),
        ("eth_getLogs", {"code": -32602, "message": "block range is too wide"}, RpcRangeTooLarge),
        ("eth_blockNumber", {"code": -32005, "message": "limit exceeded"}, RpcRateLimited),
        ("eth_blockNumber", {"code": 429, "message": "Too Many Requests"}, RpcRateLimited),
        ("eth_getBlockByNumber", {"code": -32000, "message": "header not found"}, RpcUnavailable),
        ("eth_call", {"code": -32603, "message": "internal error"}, RpcUnavailable),
    ],
)
def test_json_rpc_errors_are_typed(method: str, error: dict, kind: type) -> None:
    assert type(classify_error(method, error)) is kind


def test_backoff_grows_is_capped_and_honours_retry_after() -> None:
    policy = RetryPolicy(attempts=10, base_s=0.1, max_s=2.0)
    assert all(0.05 <= policy.delay(0, RuntimeError()) <= 0.1 for _ in range(20))
    assert all(1.0 <= policy.delay(8, RuntimeError()) <= 2.0 for _ in range(20))
    assert policy.delay(0, RpcRateLimited("m", "429", 429, 1.5)) == 1.5
