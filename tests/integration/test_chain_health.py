"""``sentinel chain-listen`` on its operator port, against a real anvil node and Kafka: records
published, the safe head, blocks behind, and /readyz once it has caught up."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from infra.evm import NodeHandle
from infra.observe import free_port
from tests.integration.chain_fixtures import TicketChain, anvil  # noqa: F401 (fixture)
from tests.integration.test_chain_restart import ListenerProcess
from tests.support.http import sample, wait_for

pytestmark = pytest.mark.integration


def test_listener_exposes_progress_and_turns_ready(settings, env, anvil: NodeHandle, tmp_path: Path):  # noqa: F811
    chain = TicketChain(anvil.url)
    sales = [chain.buy(buyer) for buyer in (chain.alice, chain.bob, chain.carol)]
    chain.mine(2)
    port = free_port()
    argv = [sys.executable, "-m", "connectors.chain_cli", "chain-listen", "--from-block", "0",
            "--poll-interval", "0.05", "--confirmations", "2", "--contracts",
            ",".join(chain.addresses)]  # fmt: skip
    child_env = {**env, "EVM_RPC_URL": anvil.url, "EVM_CHAIN_ID": "31337",
                 "METRICS_CHAIN_PORT": str(port)}  # fmt: skip
    listener = ListenerProcess(argv, child_env, tmp_path / "listener.log")
    try:
        base = f"http://127.0.0.1:{port}"
        ready = wait_for(f"{base}/readyz", lambda r: r.status_code == 200, 60).json()
        assert ready["round_error"] is None
        published = lambda r: sample(r.text, "sentinel_chain_records_published_total") == 6  # noqa: E731
        text = wait_for(f"{base}/metrics", published, 60).text
        assert sample(text, "sentinel_chain_safe_head_block") == chain.head - 2
        assert sample(text, "sentinel_chain_published_block") >= sales[-1].block_number
        assert sample(text, "sentinel_chain_blocks_behind") == 0
    finally:
        assert listener.stop() == 0
