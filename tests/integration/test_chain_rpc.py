"""The RPC client over HTTP against a JSON-RPC stub on 127.0.0.1: retries with backoff on
rate limits and unavailability, no retry on real errors, eth_getLogs ranges split on refusal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connectors.chain_rpc import (
    ChainRpc,
    RetryPolicy,
    RpcError,
    RpcRateLimited,
    RpcUnavailable,
)
from tests.integration.chain_stub import RpcFault, RpcStub

pytestmark = pytest.mark.integration
FAST = RetryPolicy(attempts=5, base_s=0.001, max_s=0.01)


def _answer(method: str, params: list[Any]) -> Any:
    if method == "eth_blockNumber":
        return "0x10"
    if method == "eth_chainId":
        raise RpcFault(-32602, "invalid params")
    if method == "eth_getLogs":
        start, end = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
        if end - start + 1 > 4:
            raise RpcFault(-32005, "query returned more than 10000 results")
        return []
    raise RpcFault(-32601, "method not found")


@pytest.fixture
def node() -> Iterator[RpcStub]:
    with RpcStub(_answer) as stub:
        yield stub


def test_rate_limits_and_outages_are_retried_until_an_answer(node: RpcStub) -> None:
    node.faults = [
        (429, None),
        (503, None),
        (200, {"code": -32005, "message": "daily request count exceeded, request rate limited"}),
        (200, {"code": -32000, "message": "header not found"}),
    ]
    waits: list[float] = []
    rpc = ChainRpc(node.url, retry=FAST, wait=lambda s: waits.append(s) or False)
    assert rpc.block_number() == 16
    assert len(node.requests) == 5
    assert len(waits) == 4 and all(0 < w <= FAST.max_s for w in waits)


def test_gives_up_after_the_last_attempt(node: RpcStub) -> None:
    node.faults = [(502, None)] * 3
    rpc = ChainRpc(node.url, retry=RetryPolicy(attempts=3, base_s=0.001), wait=lambda s: False)
    with pytest.raises(RpcUnavailable):
        rpc.block_number()
    assert len(node.requests) == 3


def test_a_real_error_is_not_retried(node: RpcStub) -> None:
    rpc = ChainRpc(node.url, retry=FAST, wait=lambda s: False)
    with pytest.raises(RpcError) as info:
        rpc.chain_id()
    assert not isinstance(info.value, RpcUnavailable | RpcRateLimited)
    assert info.value.code == -32602 and len(node.requests) == 1


def test_stop_cuts_a_backoff_short(node: RpcStub) -> None:
    node.faults = [(429, None)] * 5
    rpc = ChainRpc(node.url, retry=FAST, wait=lambda s: True)  # "stopped" during the wait
    with pytest.raises(RpcRateLimited):
        rpc.block_number()
    assert len(node.requests) == 1


def test_get_logs_ranges_are_bounded_and_split_when_refused(node: RpcStub) -> None:
    rpc = ChainRpc(node.url, retry=FAST, max_log_range=10, wait=lambda s: False)
    assert rpc.logs(0, 24, ["0x" + "ab" * 20], ["0x" + "cd" * 32]) == []
    ranges = [
        (int(p[0]["fromBlock"], 16), int(p[0]["toBlock"], 16))
        for method, p in node.requests
        if method == "eth_getLogs"
    ]
    assert all(end - start < 10 for start, end in ranges)
    answered = sorted(r for r in ranges if r[1] - r[0] + 1 <= 4)
    covered = [n for start, end in answered for n in range(start, end + 1)]
    assert covered == list(range(25)), "every block asked exactly once in an answered range"
