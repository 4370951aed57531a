"""The decoder: synthetic logs in, ChainTransfer records out (list in, list out)."""

from __future__ import annotations

import pytest
from eth_abi import encode

from connectors.chain_decode import (
    TICKET_SOLD,
    TRANSFER,
    TRANSFER_BATCH,
    TRANSFER_SINGLE,
    ZERO_ADDRESS,
    Block,
    Log,
    LogKind,
    classify,
    decode_log,
    decode_logs,
    erc20_transfer,
    event_topic,
    log_from_rpc,
    to_address,
    transfer_id,
    transfer_key,
)
from infra.topics import CHAIN_TRANSFERS
from schemas.registry import load_schema

pytestmark = pytest.mark.unit

CONTRACT = "0x" + "ab" * 20
ALICE = "0x" + "a1" * 20
BOB = "0x" + "b0" * 20
OPERATOR = "0x" + "0e" * 20
BLOCK = Block(
    number=7, hash="0x" + "77" * 32, parent_hash="0x" + "66" * 32, timestamp=1_700_000_000
)
BIG = 2**256 - 1


def word(value: int | str) -> str:
    if isinstance(value, str):
        return "0x" + value[2:].rjust(64, "0")
    return "0x" + value.to_bytes(32, "big").hex()


def make_log(topics: list[str], data: str = "0x", index: int = 0, address: str = CONTRACT) -> Log:
    return Log(
        address=address,
        topics=tuple(topics),
        data=data,
        block_number=BLOCK.number,
        block_hash=BLOCK.hash,
        tx_hash="0x" + "cd" * 32,
        tx_index=0,
        log_index=index,
    )


def test_topics_are_the_standard_signatures() -> None:
    assert TRANSFER == "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
    assert TRANSFER_SINGLE == "0xc3d58168c5ae7397731d063d5bbf3d657854427343f4c083240f7aacaa2d0f62"
    assert TRANSFER_BATCH == "0x4a39dc06d4c0dbc64b70af90fd698a233a518aa5d07e595d983b8c0526c8f7fb"
    assert TICKET_SOLD == event_topic("TicketSold(uint256,address,address,uint256)")


@pytest.mark.parametrize(
    ("sender", "receiver", "kind", "key"),
    [
        (ZERO_ADDRESS, ALICE, "MINT", ALICE),
        (ALICE, BOB, "TRANSFER", BOB),
        (BOB, ZERO_ADDRESS, "BURN", BOB),
    ],
)
def test_erc721_transfer(sender: str, receiver: str, kind: str, key: str) -> None:
    entry = make_log([TRANSFER, word(sender), word(receiver), word(BIG)], index=3)
    [record] = decode_log(entry, BLOCK, 31337)
    assert record == {
        "chain_id": 31337,
        "block_number": 7,
        "block_hash": BLOCK.hash,
        "block_time": 1_700_000_000_000,
        "tx_hash": "0x" + "cd" * 32,
        "log_index": 3,
        "contract": CONTRACT,
        "standard": "ERC721",
        "token_id": str(BIG),
        "amount": "1",
        "from_address": sender,
        "to_address": receiver,
        "kind": kind,
        "price_wei": None,
    }
    assert transfer_key(record) == key
    assert transfer_id(record) == f"31337:0x{'cd' * 32}:3:{BIG}"


def test_erc20_transfer_is_not_a_ticket() -> None:
    entry = make_log([TRANSFER, word(ALICE), word(BOB)], data=word(10**18))
    assert classify(entry) is LogKind.ERC20_TRANSFER
    assert decode_log(entry, BLOCK, 1) == []
    transfer = erc20_transfer(entry)
    assert transfer is not None and transfer.value == 10**18 and transfer.to_address == BOB


@pytest.mark.parametrize(
    ("topics", "data"),
    [
        ([TRANSFER, word(ALICE), word(BOB), word(1)], word(1)),  # 4 topics and a data word
        ([TRANSFER, word(ALICE)], word(1)),  # too few topics
        ([TRANSFER_SINGLE, word(OPERATOR), word(ALICE), word(BOB)], word(1)),  # short data
        ([], "0x"),
        (["0x" + "11" * 32, word(ALICE), word(BOB), word(1)], "0x"),
    ],
)
def test_malformed_or_foreign_logs_are_ignored(topics: list[str], data: str) -> None:
    assert decode_log(make_log(topics, data), BLOCK, 1) == []


def test_erc1155_single() -> None:
    data = "0x" + encode(["uint256", "uint256"], [42, 5]).hex()
    entry = make_log([TRANSFER_SINGLE, word(OPERATOR), word(ZERO_ADDRESS), word(ALICE)], data)
    [record] = decode_log(entry, BLOCK, 1)
    assert (record["standard"], record["kind"], record["token_id"], record["amount"]) == (
        "ERC1155",
        "MINT",
        "42",
        "5",
    )
    assert (record["from_address"], record["to_address"]) == (ZERO_ADDRESS, ALICE)


def test_erc1155_batch_gives_one_record_per_id_and_amount() -> None:
    data = "0x" + encode(["uint256[]", "uint256[]"], [[1, 2, BIG], [10, 20, 1]]).hex()
    entry = make_log([TRANSFER_BATCH, word(OPERATOR), word(ALICE), word(BOB)], data, index=9)
    records = decode_log(entry, BLOCK, 1)
    assert [(r["token_id"], r["amount"], r["kind"]) for r in records] == [
        ("1", "10", "TRANSFER"),
        ("2", "20", "TRANSFER"),
        (str(BIG), "1", "TRANSFER"),
    ]
    assert len({transfer_id(r) for r in records}) == 3  # token id makes batch ids unique


def test_erc1155_batch_with_mismatched_arrays_is_skipped() -> None:
    data = "0x" + encode(["uint256[]", "uint256[]"], [[1, 2], [10]]).hex()
    entry = make_log([TRANSFER_BATCH, word(OPERATOR), word(ALICE), word(BOB)], data)
    assert decode_log(entry, BLOCK, 1) == []


def test_ticket_sold_is_a_sale_with_price() -> None:
    entry = make_log([TICKET_SOLD, word(77), word(ALICE), word(BOB)], word(25 * 10**16))
    [record] = decode_log(entry, BLOCK, 1)
    assert (record["kind"], record["token_id"], record["price_wei"]) == (
        "SALE",
        "77",
        str(25 * 10**16),
    )
    assert (record["from_address"], record["to_address"]) == (ALICE, BOB)
    assert transfer_key(record) == BOB


def test_decode_logs_keeps_configured_contracts_in_chain_order() -> None:
    other = "0x" + "99" * 20
    logs = [
        make_log([TRANSFER, word(ALICE), word(BOB), word(2)], index=5),
        make_log([TRANSFER, word(ALICE), word(BOB), word(3)], index=1, address=other),
        make_log([TRANSFER, word(ZERO_ADDRESS), word(ALICE), word(1)], index=2),
    ]
    records = decode_logs(logs, {BLOCK.number: BLOCK}, 1, frozenset({CONTRACT}))
    assert [(r["log_index"], r["token_id"]) for r in records] == [(2, "1"), (5, "2")]


def test_rpc_mapper_normalises_case_and_quantities() -> None:
    raw = {
        "address": "0xABcdEF" + "00" * 17,
        "topics": [TRANSFER.upper().replace("0X", "0x")],
        "data": "0x",
        "blockNumber": "0x1A",
        "blockHash": "0x" + "AA" * 32,
        "transactionHash": "0x" + "BB" * 32,
        "transactionIndex": "0x0",
        "logIndex": "0x10",
    }
    entry = log_from_rpc(raw)
    assert entry.address == "0xabcdef" + "00" * 17
    assert (entry.block_number, entry.log_index, entry.topics[0]) == (26, 16, TRANSFER)
    assert to_address("0x" + "00" * 12 + "AB" * 20) == "0x" + "ab" * 20


def test_records_match_the_avro_schema() -> None:
    from fastavro import parse_schema
    from fastavro.validation import validate

    schema = parse_schema(load_schema(CHAIN_TRANSFERS.schema))
    sale = make_log([TICKET_SOLD, word(1), word(ALICE), word(BOB)], word(1))
    mint = make_log([TRANSFER, word(ZERO_ADDRESS), word(ALICE), word(1)])
    for record in decode_log(sale, BLOCK, 1) + decode_log(mint, BLOCK, 1):
        assert validate(record, schema, raise_errors=True)
