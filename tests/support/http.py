"""Free ports, small HTTP reads for tests of operator endpoints, and the wait for a long-poll
request to be registered."""

from __future__ import annotations

import asyncio
import time

import httpx


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the first sample ``name`` with ``labels`` (among its own) in a Prometheus
    text page; None when there is none."""
    for line in text.splitlines():
        if (line.startswith((name + "{", name + " "))
                and all(f'{k}="{v}"' in line for k, v in labels.items())):
            return float(line.rsplit(" ", 1)[1])
    return None


def get(url: str, timeout: float = 5.0) -> httpx.Response | None:
    """The response, or None while nothing listens there yet."""
    try:
        return httpx.get(url, timeout=timeout)
    except httpx.TransportError:
        return None


def wait_for(url: str, accept, deadline_s: float, check=None) -> httpx.Response:
    """GET ``url`` until ``accept(response)``; fails after ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < deadline:
        if check:
            check()
        last = get(url)
        if last is not None and accept(last):
            return last
        time.sleep(0.2)
    shown = None if last is None else (last.status_code, last.text[:300])
    raise TimeoutError(f"{url}: no accepted answer in {deadline_s}s; last {shown}")


async def until(condition, what: str, timeout_s: float = 5.0) -> None:
    """Until ``condition()`` is true, looked at every 5 ms; AssertionError with ``what``
    after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, what
        await asyncio.sleep(0.005)


async def until_waiting(waiter, count: int = 1, timeout_s: float = 5.0) -> None:
    """Until ``count`` requests wait on ``waiter`` (a ``DecisionWaiter``: a request registers
    after its first read of the key), so what the test stores next wakes them."""
    await until(lambda: waiter.waiting() >= count, f"{count} request(s) never started waiting",
                timeout_s)
