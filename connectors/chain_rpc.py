"""JSON-RPC to the chain: web3's HTTP provider for transport, typed answers, retries.

Transport errors, HTTP 429/5xx and the JSON-RPC errors that mean "later" (rate limits,
header not found, internal errors) are ``RETRYABLE``: retried with exponential backoff and
jitter up to ``RetryPolicy.attempts``. ``eth_getLogs`` runs over bounded block ranges; a node
that refuses a range as too large or too many results gets it in halves.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests
from web3 import HTTPProvider
from web3.types import RPCEndpoint

from connectors.chain_decode import Block, Log, block_from_rpc, log_from_rpc, to_int

log = logging.getLogger(__name__)


class RpcError(RuntimeError):
    """A JSON-RPC call failed; ``code`` is the JSON-RPC or HTTP code when there is one."""

    def __init__(self, method: str, message: str, code: int | None = None):
        super().__init__(f"{method}: {message}" + (f" (code {code})" if code is not None else ""))
        self.method, self.code = method, code


class RpcUnavailable(RpcError):
    """The node did not answer, or answered 5xx or a transient error: try again later."""


class RpcRateLimited(RpcError):
    """HTTP 429 or a provider's rate-limit error; ``retry_after`` seconds when given."""

    def __init__(self, method: str, message: str, code: int | None, retry_after: float | None):
        super().__init__(method, message, code)
        self.retry_after = retry_after


class RpcRangeTooLarge(RpcError):
    """eth_getLogs refused the block range (too wide or too many results): split it."""


class BlockNotFound(RpcError):
    """The node has no such block (yet, or any more after a reorg)."""


RETRYABLE: tuple[type[Exception], ...] = (RpcUnavailable, RpcRateLimited)
_RATE_LIMIT_HINTS = ("rate limit", "too many requests", "exceeded", "capacity")
_RANGE_HINTS = ("block range", "range is too", "too many results", "more than", "limit exceeded")
_TRANSIENT_CODES = {-32000, -32603, -32002}  # header not found / internal / resource unavailable


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8
    base_s: float = 0.2
    max_s: float = 10.0

    def delay(self, attempt: int, error: Exception) -> float:
        hinted = getattr(error, "retry_after", None)
        if hinted:
            return min(float(hinted), self.max_s)
        backoff = min(self.max_s, self.base_s * 2**attempt)
        return backoff * (0.5 + random.random() / 2)  # jitter: 50-100 %


def classify_error(method: str, error: Mapping[str, Any] | None) -> RpcError:
    """A JSON-RPC ``error`` object as a typed exception."""
    error = error or {}
    code, message = error.get("code"), str(error.get("message", "unknown error"))
    lowered = message.lower()
    if method == "eth_getLogs" and any(h in lowered for h in _RANGE_HINTS):
        return RpcRangeTooLarge(method, message, code)
    if code in (-32005, 429) or any(h in lowered for h in _RATE_LIMIT_HINTS):
        return RpcRateLimited(method, message, code, None)
    if code in _TRANSIENT_CODES or "header not found" in lowered:
        return RpcUnavailable(method, message, code)
    return RpcError(method, message, code)


def _http_error(method: str, exc: requests.HTTPError) -> RpcError:
    response = exc.response
    status = response.status_code if response is not None else None
    if status == 429:
        after = response.headers.get("Retry-After") if response is not None else None
        seconds = float(after) if after and after.replace(".", "", 1).isdigit() else None
        return RpcRateLimited(method, "HTTP 429", 429, seconds)
    if status is None or status >= 500:
        return RpcUnavailable(method, f"HTTP {status}", status)
    return RpcError(method, f"HTTP {status}", status)


class ChainRpc:
    """Typed JSON-RPC calls with retries. ``wait(seconds)`` sleeps between attempts and returns
    True to abort (the listener passes its stop event's ``wait``)."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        max_log_range: int = 500,
        wait: Callable[[float], bool] | None = None,
    ):
        self.url = url
        self.retry = retry or RetryPolicy()
        self.max_log_range = max_log_range
        self._wait = wait or threading.Event().wait
        self._provider = HTTPProvider(
            url, request_kwargs={"timeout": timeout_s}, exception_retry_configuration=None
        )

    # ------------------------------------------------------------ transport

    def _once(self, method: str, params: Sequence[Any]) -> Any:
        try:
            response = self._provider.make_request(RPCEndpoint(method), list(params))
        except requests.HTTPError as exc:
            raise _http_error(method, exc) from exc
        except (requests.ConnectionError, requests.Timeout, OSError) as exc:
            raise RpcUnavailable(method, f"{type(exc).__name__}: {exc}") from exc
        except ValueError as exc:  # not JSON
            raise RpcUnavailable(method, f"unreadable response: {exc}") from exc
        if "error" in response and response["error"]:
            raise classify_error(method, response["error"])
        return response.get("result")

    def call(self, method: str, *params: Any) -> Any:
        """One call, retried on ``RETRYABLE`` errors with exponential backoff."""
        for attempt in range(self.retry.attempts):
            try:
                return self._once(method, params)
            except RETRYABLE as exc:
                if attempt == self.retry.attempts - 1:
                    raise
                delay = self.retry.delay(attempt, exc)
                log.warning("%s; retry %d in %.2fs", exc, attempt + 1, delay)
                if self._wait(delay):
                    raise
        raise AssertionError("unreachable")

    # ------------------------------------------------------------ typed calls

    def chain_id(self) -> int:
        return to_int(self.call("eth_chainId"))

    def block_number(self) -> int:
        return to_int(self.call("eth_blockNumber"))

    def block(self, number: int | str) -> Block:
        tag = hex(number) if isinstance(number, int) else number
        raw = self.call("eth_getBlockByNumber", tag, False)
        if raw is None:
            raise BlockNotFound("eth_getBlockByNumber", f"no block {number}")
        return block_from_rpc(raw)

    def blocks(self, start: int, end: int) -> list[Block]:
        return [self.block(n) for n in range(start, end + 1)]

    def logs(
        self,
        start: int,
        end: int,
        addresses: Sequence[str] | None,
        topics: Sequence[str] | None,
    ) -> list[Log]:
        """Logs of ``addresses`` whose topic0 is one of ``topics`` (None: any), in ranges of
        at most ``max_log_range`` blocks."""
        out: list[Log] = []
        for lo in range(start, end + 1, self.max_log_range):
            out.extend(self._logs(lo, min(end, lo + self.max_log_range - 1), addresses, topics))
        return out

    def _logs(
        self,
        start: int,
        end: int,
        addresses: Sequence[str] | None,
        topics: Sequence[str] | None,
    ) -> list[Log]:
        query: dict[str, Any] = {"fromBlock": hex(start), "toBlock": hex(end)}
        if addresses is not None:
            query["address"] = list(addresses)
        if topics is not None:
            query["topics"] = [list(topics)]
        try:
            raw = self.call("eth_getLogs", query)
        except RpcRangeTooLarge:
            if start == end:
                raise
            mid = (start + end) // 2
            log.info("eth_getLogs %d-%d too large: splitting", start, end)
            return self._logs(start, mid, addresses, topics) + self._logs(
                mid + 1, end, addresses, topics
            )
        return [log_from_rpc(entry) for entry in raw or ()]
