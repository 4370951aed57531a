"""Fixtures and helpers for the chain listener's tests on a real local EVM node (anvil).

``anvil``: a fresh node per test on an ephemeral 127.0.0.1 port, stopped afterwards.
``TicketChain``: deploys the committed contracts and drives sales, resales, transfers, burns
and ERC-1155 moves from anvil's unlocked accounts (automine: one block per transaction).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from web3 import Web3

from connectors.chain_checkpoint import Checkpoint
from infra import evm
from infra.settings import REPO_ROOT, Settings
from infra.topics import CHAIN_CHECKPOINTS, CHAIN_TRANSFERS, SECURITY_EVENTS, full_name
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings

_TICK = threading.Event()  # never set
CONTRACTS = REPO_ROOT / "connectors" / "contracts"
PRICE = Web3.to_wei(0.1, "ether")


@pytest.fixture
def anvil() -> Iterator[evm.NodeHandle]:
    handle = evm.start_node()
    try:
        yield handle
    finally:
        evm.stop_node(handle)


def artifact(name: str) -> dict:
    return json.loads((CONTRACTS / f"{name}.json").read_text())


@dataclass
class Tx:
    hash: str
    block_number: int
    block_hash: str
    block_time_ms: int


class TicketChain:
    """The contracts on a node and the actions of a small ticketing day."""

    def __init__(self, url: str):
        self.w3 = Web3(Web3.HTTPProvider(url))
        accounts = [a.lower() for a in self.w3.eth.accounts]
        self.organizer, self.alice, self.bob, self.carol, self.dave = accounts[:5]
        self.tickets = self._deploy("TicketNFT", "Show", "SHOW", PRICE, 1000)
        self.passes = self._deploy("SeasonPass")

    @property
    def head(self) -> int:
        return self.w3.eth.block_number

    def _deploy(self, name: str, *args: Any) -> Any:
        spec = artifact(name)
        factory = self.w3.eth.contract(abi=spec["abi"], bytecode=spec["bytecode"])
        receipt = self._wait(factory.constructor(*args).transact({"from": _cs(self.organizer)}))
        return self.w3.eth.contract(address=receipt["contractAddress"], abi=spec["abi"])

    def _wait(self, tx_hash: bytes) -> Any:
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
        assert receipt["status"] == 1, receipt
        return receipt

    def send(self, call: Any, sender: str, value: int = 0) -> Tx:
        receipt = self._wait(
            call.transact({"from": Web3.to_checksum_address(sender), "value": value})
        )
        block = self.w3.eth.get_block(receipt["blockNumber"])
        return Tx(
            hash="0x" + receipt["transactionHash"].hex().removeprefix("0x"),
            block_number=receipt["blockNumber"],
            block_hash="0x" + block["hash"].hex().removeprefix("0x"),
            block_time_ms=block["timestamp"] * 1000,
        )

    # ticket actions ---------------------------------------------------------------
    def buy(self, buyer: str) -> Tx:
        return self.send(self.tickets.functions.buy(), buyer, PRICE)

    def list(self, seller: str, token_id: int, price: int) -> Tx:
        return self.send(self.tickets.functions.list(token_id, price), seller)

    def buy_listed(self, buyer: str, token_id: int, price: int) -> Tx:
        return self.send(self.tickets.functions.buyListed(token_id), buyer, price)

    def transfer(self, sender: str, receiver: str, token_id: int) -> Tx:
        call = self.tickets.functions.transferFrom(_cs(sender), _cs(receiver), token_id)
        return self.send(call, sender)

    def mint_to(self, receiver: str) -> Tx:
        return self.send(self.tickets.functions.mintTo(_cs(receiver)), self.organizer)

    def burn(self, owner: str, token_id: int) -> Tx:
        return self.send(self.tickets.functions.burn(token_id), owner)

    # ERC-1155 ---------------------------------------------------------------------
    def pass_mint(self, receiver: str, token_id: int, amount: int) -> Tx:
        call = self.passes.functions.mint(_cs(receiver), token_id, amount)
        return self.send(call, self.organizer)

    def pass_mint_batch(self, receiver: str, ids: list[int], amounts: list[int]) -> Tx:
        call = self.passes.functions.mintBatch(_cs(receiver), ids, amounts)
        return self.send(call, self.organizer)

    def pass_transfer(self, sender: str, receiver: str, token_id: int, amount: int) -> Tx:
        call = self.passes.functions.safeTransferFrom(
            _cs(sender), _cs(receiver), token_id, amount, b""
        )
        return self.send(call, sender)

    def pass_transfer_batch(
        self, sender: str, receiver: str, ids: list[int], amounts: list[int]
    ) -> Tx:
        call = self.passes.functions.safeBatchTransferFrom(
            _cs(sender), _cs(receiver), ids, amounts, b""
        )
        return self.send(call, sender)

    # node control -----------------------------------------------------------------
    def mine(self, blocks: int = 1) -> None:
        for _ in range(blocks):
            self.w3.provider.make_request("evm_mine", [])

    def snapshot(self) -> str:
        return self.w3.provider.make_request("evm_snapshot", [])["result"]

    def revert(self, snapshot_id: str) -> None:
        assert self.w3.provider.make_request("evm_revert", [snapshot_id])["result"] is True

    @property
    def addresses(self) -> tuple[str, str]:
        return self.tickets.address.lower(), self.passes.address.lower()


def _cs(address: str) -> str:
    return Web3.to_checksum_address(address)


# ---------------------------------------------------------------------- Kafka reading


def _committed_consumer(settings: Settings) -> Consumer:
    return Consumer(
        settings.kafka.consumer_conf(
            f"chain-test-{uuid.uuid4().hex}",
            **{"isolation.level": "read_committed", "enable.partition.eof": True},
        )
    )


def read_all(settings: Settings, topic: str, timeout_s: float = 30.0) -> list[Any]:
    """Every committed message of ``topic`` now (read to the end of each partition)."""
    consumer = _committed_consumer(settings)
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
        pending, out = set(meta.partitions), []
        deadline = time.monotonic() + timeout_s
        while pending:
            assert time.monotonic() < deadline, f"{topic}: not read to the end"
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error() is not None:
                assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                pending.discard(msg.partition())
                continue
            out.append(msg)
        return out
    finally:
        consumer.close()


def transfers(settings: Settings) -> list[dict]:
    """Decoded committed ChainTransfer records, in chain order, with key and id header."""
    codec = AvroCodec.for_topic(registry_from_settings(settings), CHAIN_TRANSFERS)
    out = []
    for msg in read_all(settings, full_name(CHAIN_TRANSFERS, settings.kafka.topic_prefix)):
        record = codec.decode(msg.value())
        record["_key"] = msg.key().decode()
        record["_id"] = dict(msg.headers() or [])["id"].decode()
        out.append(record)
    return sorted(out, key=lambda r: (r["block_number"], r["log_index"], int(r["token_id"])))


def security_events(settings: Settings) -> list[dict]:
    codec = AvroCodec.for_topic(registry_from_settings(settings), SECURITY_EVENTS)
    topic = full_name(SECURITY_EVENTS, settings.kafka.topic_prefix)
    return [codec.decode(m.value()) for m in read_all(settings, topic)]


def checkpoints(settings: Settings) -> list[Checkpoint]:
    topic = full_name(CHAIN_CHECKPOINTS, settings.kafka.topic_prefix)
    return [Checkpoint.from_bytes(m.value()) for m in read_all(settings, topic)]


def wait_for(condition: Callable[[], Any], timeout_s: float = 60.0, what: str = "") -> Any:
    """Poll ``condition`` until truthy (its value is returned); fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        _TICK.wait(0.05)  # the poll interval between two checks of the condition
