"""Free ports and small HTTP reads for tests of operator endpoints."""

from __future__ import annotations

import socket
import time

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
