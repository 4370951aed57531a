"""Conformance on real mainnet data: ethereum-etl's recorded JSON-RPC responses, replayed by a
JSON-RPC stub on 127.0.0.1 to the listener's RPC client, mapper, decoder and listener loop, and
compared with ethereum-etl's expected outputs (shared/conformance/ethereum-etl/README.md)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from connectors.chain import ChainListener, ListenerConfig
from connectors.chain_checkpoint import Checkpoint
from connectors.chain_decode import (
    TRANSFER,
    LogKind,
    classify,
    decode_log,
    erc20_transfer,
    log_from_rpc,
)
from connectors.chain_rpc import ChainRpc
from infra.settings import REPO_ROOT
from tests.integration.chain_stub import RecordedChain, RpcStub

pytestmark = pytest.mark.integration

CASES = REPO_ROOT.parent / "shared" / "conformance" / "ethereum-etl"
STREAM = CASES / "test_stream" / "blocks_1755634_1755635"
TRANSFERS = CASES / "test_export_token_transfers_job" / "block_with_transfers"
RECEIPTS = CASES / "test_export_receipts_job" / "receipts_with_logs"
BLOCKS = CASES / "test_export_blocks_job"


class MemoryOutput:
    """Collects committed rounds (this test checks decoding; Kafka is crossed in the anvil
    tests)."""

    def __init__(self) -> None:
        self.records: list[dict] = []
        self.checkpoints: list[Checkpoint] = []

    def load_checkpoint(self) -> Checkpoint | None:
        return self.checkpoints[-1] if self.checkpoints else None

    def commit(self, records: Sequence[dict], checkpoint: Checkpoint, events=()) -> None:
        self.records.extend(records)
        self.checkpoints.append(checkpoint)

    def close(self) -> None:
        pass


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _csv(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _cases(*folders: Path) -> list[Path]:
    """The recorded cases, which live beside the repository (``../shared``), not in it."""
    missing = [f for f in folders if not f.is_dir()]
    assert not missing, f"ethereum-etl conformance cases not found: {missing}"
    return list(folders)


@pytest.fixture
def stream_node() -> Iterator[RpcStub]:
    with RpcStub(RecordedChain(_cases(STREAM)).answer) as stub:
        yield stub


@pytest.fixture
def transfers_node() -> Iterator[RpcStub]:
    folders = _cases(TRANSFERS, BLOCKS / "block_with_logs", RECEIPTS)
    with RpcStub(RecordedChain(folders).answer) as stub:
        yield stub


def _listen(url: str, contracts: set[str], start: int, end: int) -> MemoryOutput:
    output = MemoryOutput()
    config = ListenerConfig(
        chain_id=1,
        contracts=frozenset(contracts),
        confirmations=0,
        from_block=start,
        to_block=end,
        max_blocks_per_round=1,
        poll_interval_s=0.01,
    )
    ChainListener(ChainRpc(url), output, config).run(once=True)
    return output


def test_stream_blocks_hashes_and_timestamps(stream_node: RpcStub) -> None:
    blocks = ChainRpc(stream_node.url).blocks(1755634, 1755635)
    expected = _jsonl(STREAM / "expected_blocks.json")
    assert [(b.number, b.hash, b.parent_hash, b.timestamp) for b in blocks] == [
        (e["number"], e["hash"], e["parent_hash"], e["timestamp"]) for e in expected
    ]


def test_stream_logs_decode_as_ethereum_etl(stream_node: RpcStub) -> None:
    logs = ChainRpc(stream_node.url).logs(1755634, 1755635, None, None)
    expected = _jsonl(STREAM / "expected_logs.json")
    assert [
        (e.block_number, e.block_hash, e.tx_hash, e.tx_index, e.log_index, e.address, e.data)
        + e.topics
        for e in logs
    ] == [
        (x["block_number"], x["block_hash"], x["transaction_hash"], x["transaction_index"])
        + (x["log_index"], x["address"], x["data"], *x["topics"])
        for x in expected
    ]


def test_stream_erc20_transfer_is_recognised_and_not_a_ticket(stream_node: RpcStub) -> None:
    logs = ChainRpc(stream_node.url).logs(1755634, 1755635, None, None)
    expected = _jsonl(STREAM / "expected_token_transfers.json")
    transfers = [t for t in map(erc20_transfer, logs) if t is not None]
    assert [
        (t.token_address, t.from_address, t.to_address, t.value, t.tx_hash, t.log_index)
        for t in transfers
    ] == [
        (e["token_address"], e["from_address"], e["to_address"], e["value"])
        + (e["transaction_hash"], e["log_index"])
        for e in expected
    ]
    erc20 = [e for e in logs if e.topics and e.topics[0] == TRANSFER]
    assert [classify(e) for e in erc20] == [LogKind.ERC20_TRANSFER]
    assert [classify(e) for e in logs if e not in erc20] == [LogKind.OTHER]


def test_stream_listener_publishes_no_ticket_and_checkpoints_the_range(
    stream_node: RpcStub,
) -> None:
    # Both contracts of the range configured as ticket contracts: the ERC-20 token's
    # Transfer must still not become a ticket, nor the other contract's unknown event.
    contracts = {e["address"] for e in _jsonl(STREAM / "expected_logs.json")}
    output = _listen(stream_node.url, contracts, 1755634, 1755635)
    blocks = _jsonl(STREAM / "expected_blocks.json")
    assert output.records == []
    assert output.checkpoints == [Checkpoint(b["number"], b["hash"]) for b in blocks]
    assert ("eth_getLogs", [_logs_query(1755634, sorted(contracts))]) in stream_node.requests


def _logs_query(block: int, addresses: list[str]) -> dict:
    from connectors.chain_decode import TICKET_TOPICS

    return {
        "fromBlock": hex(block),
        "toBlock": hex(block),
        "address": addresses,
        "topics": [list(TICKET_TOPICS)],
    }


def test_block_with_transfers_erc20_matches_and_is_no_ticket(transfers_node: RpcStub) -> None:
    rpc = ChainRpc(transfers_node.url)
    logs = rpc.logs(483920, 483920, None, [TRANSFER])
    # The stub derives eth_getLogs from the receipts: it must equal the node's own answer
    # to the same filter (the recorded eth_getFilterLogs).
    node_answer = json.loads((TRANSFERS / "web3_response.eth_getFilterLogs_0x0.json").read_text())
    assert logs == [log_from_rpc(raw) for raw in node_answer["result"]]
    expected = _csv(TRANSFERS / "expected_token_transfers.csv")
    transfers = [erc20_transfer(e) for e in logs]
    assert [
        (t.token_address, t.from_address, t.to_address, str(t.value), t.tx_hash)
        + (str(t.log_index), str(t.block_number))
        for t in transfers
        if t is not None
    ] == [tuple(row.values()) for row in expected]
    token = expected[0]["token_address"]
    output = _listen(transfers_node.url, {token}, 483920, 483920)
    assert output.records == []
    block = _csv(BLOCKS / "block_with_logs" / "expected_blocks.csv")[0]
    assert output.checkpoints == [Checkpoint(483920, block["hash"])]


def test_receipt_logs_map_as_ethereum_etl() -> None:
    recorded = RecordedChain([RECEIPTS]).receipts
    logs = [log_from_rpc(raw) for r in recorded.values() for raw in r["logs"]]
    logs.sort(key=lambda e: e.log_index)
    expected = _jsonl(RECEIPTS / "expected_logs.json")
    assert [
        (e.log_index, e.tx_hash, e.block_hash, e.address, e.data, list(e.topics)) for e in logs
    ] == [
        (
            x["log_index"],
            x["transaction_hash"],
            x["block_hash"],
            x["address"],
            x["data"],
            x["topics"],
        )
        for x in expected
    ]


@pytest.mark.parametrize(
    "case", ["block_without_transactions", "blocks_with_transactions", "block_with_logs"]
)
def test_export_blocks_hashes_parents_and_timestamps(case: str) -> None:
    expected = _csv(BLOCKS / case / "expected_blocks.csv")
    with RpcStub(RecordedChain([BLOCKS / case]).answer) as node:
        rpc = ChainRpc(node.url)
        blocks = [rpc.block(int(row["number"])) for row in expected]
        first, last = int(expected[0]["number"]), int(expected[-1]["number"])
        output = _listen(node.url, set(), first, last)  # also checks the parent-hash chain
    assert [(b.number, b.hash, b.parent_hash, b.timestamp) for b in blocks] == [
        (int(r["number"]), r["hash"], r["parent_hash"], int(r["timestamp"])) for r in expected
    ]
    assert output.checkpoints[-1] == Checkpoint(last, expected[-1]["hash"])


def test_extract_token_transfers_from_logs_csv() -> None:
    folder = CASES / "test_extract_token_transfers_job" / "logs"
    logs = [
        log_from_rpc(
            {
                "address": row["address"],
                "topics": row["topics"].split(","),
                "data": row["data"],
                "blockNumber": int(row["block_number"]),
                "blockHash": row["block_hash"],
                "transactionHash": row["transaction_hash"],
                "transactionIndex": int(row["transaction_index"]),
                "logIndex": int(row["log_index"]),
            }
        )
        for row in _csv(folder / "logs.csv")
    ]
    expected = _csv(folder / "expected_token_transfers.csv")
    transfers = [t for t in map(erc20_transfer, logs) if t is not None]
    assert [
        (t.token_address, t.from_address, t.to_address, str(t.value), t.tx_hash)
        + (str(t.log_index), str(t.block_number))
        for t in transfers
    ] == [tuple(row.values()) for row in expected]
    assert [classify(e) for e in logs] == [
        LogKind.ERC20_TRANSFER,
        LogKind.OTHER,
        LogKind.ERC20_TRANSFER,
    ]


def test_real_erc20_log_reshaped_as_erc721_is_a_ticket_transfer(stream_node: RpcStub) -> None:
    """The same real log with the value moved into a 4th topic and empty data is ERC-721."""
    from dataclasses import replace

    real = next(
        e
        for e in ChainRpc(stream_node.url).logs(1755634, 1755635, None, [TRANSFER])
        if classify(e) is LogKind.ERC20_TRANSFER
    )
    block = ChainRpc(stream_node.url).block(real.block_number)
    as_721 = replace(real, topics=(*real.topics, real.data), data="0x")
    assert decode_log(real, block, 1) == []
    [record] = decode_log(as_721, block, 1)
    assert record["kind"] == "TRANSFER" and record["standard"] == "ERC721"
    assert record["token_id"] == "5000000000000000000"
    assert record["block_time"] == 1466669562 * 1000
    assert (record["from_address"], record["to_address"]) == (
        "0x6498077292a0921c8804924fdf47b5e91e2a215f",
        "0x8b3b3b624c3c0397d3da8fd861512393d51dcbac",
    )
