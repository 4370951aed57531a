"""JSON-RPC blocks and logs to typed values, and ticket logs to ChainTransfer records.

The one mapper at the edge (ethereum-etl's ``json_dict_to_*`` habit): hex quantities become
ints, hashes and addresses lower-case ``0x`` strings, uint256 values decimal strings. Nothing
past this module sees raw JSON-RPC.

What is a ticket movement: in a configured contract, an ERC-721 ``Transfer`` (4 topics, empty
data; MINT from the zero address, BURN to it), an ERC-1155 ``TransferSingle`` or
``TransferBatch`` (one record per token id and amount) and the marketplace's ``TicketSold``
(kind SALE with ``price_wei``). An ERC-20 ``Transfer`` has the same topic0 as ERC-721's but 3
topics and one data word: it is recognised (``erc20_transfer``) and never taken for a ticket.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_utils import keccak

log = logging.getLogger(__name__)

ZERO_ADDRESS = "0x" + "0" * 40


def event_topic(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


TRANSFER = event_topic("Transfer(address,address,uint256)")
TRANSFER_SINGLE = event_topic("TransferSingle(address,address,address,uint256,uint256)")
TRANSFER_BATCH = event_topic("TransferBatch(address,address,address,uint256[],uint256[])")
TICKET_SOLD = event_topic("TicketSold(uint256,address,address,uint256)")
# topic0 values the listener asks eth_getLogs for (one OR-ed topic position).
TICKET_TOPICS: tuple[str, ...] = (TRANSFER, TRANSFER_SINGLE, TRANSFER_BATCH, TICKET_SOLD)


# ---------------------------------------------------------------- normalisation (one place)


def to_int(value: str | int) -> int:
    """A JSON-RPC quantity (``0x1a``) or an int."""
    return value if isinstance(value, int) else int(value, 16)


def to_hex(value: str | bytes) -> str:
    """Hashes and data: lower-case with ``0x``."""
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    text = value.lower()
    return text if text.startswith("0x") else "0x" + text


def to_address(value: str | bytes) -> str:
    """A 20-byte address, lower-case; a 32-byte topic word keeps its last 20 bytes."""
    text = to_hex(value)
    return "0x" + text[2:].rjust(40, "0")[-40:]


def word_to_int(word: str) -> int:
    return int(word[2:] or "0", 16)


# ---------------------------------------------------------------- typed blocks and logs


@dataclass(frozen=True, slots=True)
class Block:
    number: int
    hash: str
    parent_hash: str
    timestamp: int  # seconds since the epoch, UTC

    @property
    def time_ms(self) -> int:
        return self.timestamp * 1000


@dataclass(frozen=True, slots=True)
class Log:
    address: str
    topics: tuple[str, ...]
    data: str
    block_number: int
    block_hash: str
    tx_hash: str
    tx_index: int
    log_index: int
    removed: bool = False

    @property
    def data_words(self) -> int:
        return (len(self.data) - 2) // 64


def block_from_rpc(raw: Mapping[str, Any]) -> Block:
    return Block(
        number=to_int(raw["number"]),
        hash=to_hex(raw["hash"]),
        parent_hash=to_hex(raw["parentHash"]),
        timestamp=to_int(raw["timestamp"]),
    )


def log_from_rpc(raw: Mapping[str, Any]) -> Log:
    return Log(
        address=to_address(raw["address"]),
        topics=tuple(to_hex(t) for t in raw.get("topics") or ()),
        data=to_hex(raw.get("data") or "0x"),
        block_number=to_int(raw["blockNumber"]),
        block_hash=to_hex(raw["blockHash"]),
        tx_hash=to_hex(raw["transactionHash"]),
        tx_index=to_int(raw["transactionIndex"]),
        log_index=to_int(raw["logIndex"]),
        removed=bool(raw.get("removed", False)),
    )


# ---------------------------------------------------------------- classification


class LogKind(Enum):
    ERC20_TRANSFER = "erc20_transfer"
    ERC721_TRANSFER = "erc721_transfer"
    ERC1155_SINGLE = "erc1155_transfer_single"
    ERC1155_BATCH = "erc1155_transfer_batch"
    TICKET_SOLD = "ticket_sold"
    OTHER = "other"


def classify(entry: Log) -> LogKind:
    """What a log is, from its topic0, topic count and data length."""
    if not entry.topics:
        return LogKind.OTHER
    topic0, n_topics, n_words = entry.topics[0], len(entry.topics), entry.data_words
    if topic0 == TRANSFER and n_topics == 4 and n_words == 0:
        return LogKind.ERC721_TRANSFER
    if topic0 == TRANSFER and n_topics == 3 and n_words == 1:
        return LogKind.ERC20_TRANSFER
    if topic0 == TRANSFER_SINGLE and n_topics == 4 and n_words == 2:
        return LogKind.ERC1155_SINGLE
    if topic0 == TRANSFER_BATCH and n_topics == 4 and n_words >= 4:
        return LogKind.ERC1155_BATCH
    if topic0 == TICKET_SOLD and n_topics == 4 and n_words == 1:
        return LogKind.TICKET_SOLD
    return LogKind.OTHER


@dataclass(frozen=True, slots=True)
class Erc20Transfer:
    """A fungible token transfer: recognised so that it is never taken for a ticket."""

    token_address: str
    from_address: str
    to_address: str
    value: int
    tx_hash: str
    log_index: int
    block_number: int


def erc20_transfer(entry: Log) -> Erc20Transfer | None:
    if classify(entry) is not LogKind.ERC20_TRANSFER:
        return None
    return Erc20Transfer(
        token_address=entry.address,
        from_address=to_address(entry.topics[1]),
        to_address=to_address(entry.topics[2]),
        value=word_to_int(entry.data),
        tx_hash=entry.tx_hash,
        log_index=entry.log_index,
        block_number=entry.block_number,
    )


# ---------------------------------------------------------------- ChainTransfer records


def movement_kind(from_address: str, to_address_: str) -> str:
    if from_address == ZERO_ADDRESS:
        return "MINT"
    if to_address_ == ZERO_ADDRESS:
        return "BURN"
    return "TRANSFER"


def _record(entry: Log, block: Block, chain_id: int, **fields: Any) -> dict[str, Any]:
    return {
        "chain_id": chain_id,
        "block_number": block.number,
        "block_hash": block.hash,
        "block_time": block.time_ms,
        "tx_hash": entry.tx_hash,
        "log_index": entry.log_index,
        "contract": entry.address,
        "amount": "1",
        "price_wei": None,
        **fields,
    }


def _erc721(entry: Log, block: Block, chain_id: int) -> list[dict[str, Any]]:
    sender, receiver = to_address(entry.topics[1]), to_address(entry.topics[2])
    return [
        _record(
            entry,
            block,
            chain_id,
            standard="ERC721",
            token_id=str(word_to_int(entry.topics[3])),
            from_address=sender,
            to_address=receiver,
            kind=movement_kind(sender, receiver),
        )
    ]


def _erc1155(entry: Log, block: Block, chain_id: int, batch: bool) -> list[dict[str, Any]]:
    sender, receiver = to_address(entry.topics[2]), to_address(entry.topics[3])
    body = bytes.fromhex(entry.data[2:])
    types = ["uint256[]", "uint256[]"] if batch else ["uint256", "uint256"]
    ids, amounts = abi_decode(types, body)
    if not batch:
        ids, amounts = [ids], [amounts]
    if len(ids) != len(amounts):
        raise DecodingError(f"TransferBatch with {len(ids)} ids and {len(amounts)} values")
    kind = movement_kind(sender, receiver)
    return [
        _record(
            entry,
            block,
            chain_id,
            standard="ERC1155",
            token_id=str(token_id),
            amount=str(amount),
            from_address=sender,
            to_address=receiver,
            kind=kind,
        )
        for token_id, amount in zip(ids, amounts, strict=True)
    ]


def _sale(entry: Log, block: Block, chain_id: int) -> list[dict[str, Any]]:
    return [
        _record(
            entry,
            block,
            chain_id,
            standard="ERC721",
            token_id=str(word_to_int(entry.topics[1])),
            from_address=to_address(entry.topics[2]),
            to_address=to_address(entry.topics[3]),
            kind="SALE",
            price_wei=str(word_to_int(entry.data)),
        )
    ]


def decode_log(entry: Log, block: Block, chain_id: int) -> list[dict[str, Any]]:
    """The ChainTransfer records of one log ([] for anything that is not a ticket event)."""
    kind = classify(entry)
    try:
        if kind is LogKind.ERC721_TRANSFER:
            return _erc721(entry, block, chain_id)
        if kind in (LogKind.ERC1155_SINGLE, LogKind.ERC1155_BATCH):
            return _erc1155(entry, block, chain_id, batch=kind is LogKind.ERC1155_BATCH)
        if kind is LogKind.TICKET_SOLD:
            return _sale(entry, block, chain_id)
    except (DecodingError, ValueError) as exc:
        log.warning("undecodable %s log %s:%d: %s", kind.value, entry.tx_hash, entry.log_index, exc)
    return []


def decode_logs(
    logs: Iterable[Log],
    blocks: Mapping[int, Block],
    chain_id: int,
    contracts: frozenset[str],
) -> list[dict[str, Any]]:
    """Ticket records of the configured ``contracts`` (lower-case), in chain order."""
    ordered = sorted(logs, key=lambda e: (e.block_number, e.log_index))
    return [
        record
        for entry in ordered
        if entry.address in contracts and not entry.removed
        for record in decode_log(entry, blocks[entry.block_number], chain_id)
    ]


def transfer_id(record: Mapping[str, Any]) -> str:
    """Idempotent id: (chain_id, tx_hash, log_index, token_id); a batch log has many ids."""
    return f"{record['chain_id']}:{record['tx_hash']}:{record['log_index']}:{record['token_id']}"


def transfer_key(record: Mapping[str, Any]) -> str:
    """The receiving wallet; a burn is keyed by the wallet that held the ticket."""
    if record["kind"] == "BURN":
        return record["from_address"]
    return record["to_address"]
