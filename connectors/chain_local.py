"""The ticket contract on the local EVM node, for ``sentinel up`` and ``sentinel demo``.

``ensure_contract`` deploys ``TicketNFT`` once (its address is kept in
``<data>/evm/contracts.json`` and checked against the chain on every call, so a node that
lost its chain gets a new deployment); ``mint_tickets`` has the organizer mint a ticket to
each wallet and mines the confirmation depth, so that the chain listener publishes the
transfers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from web3 import Web3

from infra.settings import REPO_ROOT, Settings

ARTIFACT = REPO_ROOT / "connectors" / "contracts" / "TicketNFT.json"
PRICE_WEI = Web3.to_wei(0.1, "ether")
MAX_SUPPLY = 10_000_000


def _web3(settings: Settings) -> Web3:
    return Web3(Web3.HTTPProvider(settings.evm.rpc_url, request_kwargs={"timeout": 30}))


def _record(settings: Settings) -> Path:
    return settings.stream.data_dir / "evm" / "contracts.json"


def ensure_contract(settings: Settings) -> str:
    """The TicketNFT address on the node (lower-case), deployed now if it is not there."""
    w3, path = _web3(settings), _record(settings)
    if path.exists():
        address = json.loads(path.read_text()).get("TicketNFT", "")
        if address and len(w3.eth.get_code(Web3.to_checksum_address(address))) > 0:
            return address
    spec = json.loads(ARTIFACT.read_text())
    factory = w3.eth.contract(abi=spec["abi"], bytecode=spec["bytecode"])
    tx = factory.constructor("Sentinel Show", "SHOW", PRICE_WEI, MAX_SUPPLY).transact(
        {"from": w3.eth.accounts[0]})
    address = w3.eth.wait_for_transaction_receipt(tx, timeout=30)["contractAddress"].lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"TicketNFT": address}) + "\n")
    return address


def mint_tickets(settings: Settings, address: str, wallets: list[str]) -> int:
    """The organizer mints one ticket to each wallet; then the confirmation depth is mined.
    Returns the number of mints."""
    w3 = _web3(settings)
    spec = json.loads(ARTIFACT.read_text())
    contract: Any = w3.eth.contract(address=Web3.to_checksum_address(address), abi=spec["abi"])
    organizer = w3.eth.accounts[0]
    hashes = [contract.functions.mintTo(Web3.to_checksum_address(w)).transact({"from": organizer})
              for w in wallets]
    for tx in hashes:
        w3.eth.wait_for_transaction_receipt(tx, timeout=30)
    for _ in range(settings.evm.confirmations + 1):
        w3.provider.make_request("evm_mine", [])
    return len(hashes)
