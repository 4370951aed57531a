"""The benchmark's load client: signed purchases over keep-alive HTTP/1.1 on asyncio streams.

A hand-rolled client because the point is to measure the gateway: httpx costs more CPU per
request than the gateway itself, and client and server share this machine's cores.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from connectors.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign


class Load:
    """Builds request bytes (a new purchase each) and counts 202s."""

    def __init__(self, host: str, port: int, secret: bytes, run_id: str):
        self.host, self.port, self.secret, self.run_id = host, port, secret, run_id
        self.sequence = 0
        self.accepted = 0
        self._occurred = datetime.now(UTC).isoformat()

    def next_request(self) -> bytes:
        self.sequence += 1
        n = self.sequence
        body = orjson.dumps({
            "purchase_id": f"bench-{self.run_id}-{n}", "occurred_at": self._occurred,
            "wallet": f"0x{n:040x}", "user_id": f"u-{n}", "organizer_id": "org-1",
            "show_id": f"show-{n % 50}", "ticket_id": f"t-{n}", "quantity": 1 + n % 4,
            "unit_price_minor": 5_000 + n % 1000, "currency": "USD", "channel": "PRIMARY",
            "payment_method": "CARD", "card_fingerprint": f"card-{n % 9973}",
            "ip": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", "device_id": f"dev-{n}",
            "geo": {"lat": 52.52, "lon": 13.4, "country": "DE"},
        })  # fmt: skip
        ts = int(time.time())
        head = (
            f"POST /v1/purchases HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"{TIMESTAMP_HEADER}: {ts}\r\n{SIGNATURE_HEADER}: {sign(self.secret, ts, body)}\r\n\r\n"
        )
        return head.encode() + body


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        return cls(*await asyncio.open_connection(host, port))

    async def request(self, raw: bytes) -> int:
        """Send one request, read the whole response; returns the status code."""
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        at = head.lower().find(b"content-length:")
        length = int(head[at + 15 : head.index(b"\r\n", at)]) if at >= 0 else 0
        await self.reader.readexactly(length)
        return int(head[9:12])

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


@dataclass
class Phase:
    elapsed_s: float = 0.0
    sent: int = 0
    statuses: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        return {"requests": self.sent, "duration_s": round(self.elapsed_s, 3),
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())}}  # fmt: skip


async def run_full_speed(load: Load, concurrency: int, duration_s: float) -> Phase:
    phase = Phase()
    conns = [await Connection.open(load.host, load.port) for _ in range(concurrency)]
    start = time.perf_counter()
    end = start + duration_s

    async def loop(conn: Connection) -> None:
        while time.perf_counter() < end:
            _count(load, phase, await conn.request(load.next_request()))

    await asyncio.gather(*(loop(c) for c in conns))
    phase.elapsed_s = time.perf_counter() - start
    await asyncio.gather(*(c.close() for c in conns))
    return phase


async def run_fixed_rate(load: Load, rate: int, duration_s: float, connections: int) -> Phase:
    """Open loop: request i is due at start + i / rate; latency counts from that time."""
    phase = Phase()
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await Connection.open(load.host, load.port))
    total, tasks = int(rate * duration_s), []
    start = time.perf_counter()

    async def one(due: float) -> None:
        conn = await idle.get()
        status = await conn.request(load.next_request())
        phase.latencies_ms.append((time.perf_counter() - due) * 1000)
        _count(load, phase, status)
        idle.put_nowait(conn)

    for i in range(total):
        due = start + i / rate
        if (delay := due - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    phase.elapsed_s = time.perf_counter() - start
    while not idle.empty():
        await idle.get_nowait().close()
    return phase


def _count(load: Load, phase: Phase, status: int) -> None:
    phase.sent += 1
    phase.statuses[status] += 1
    if status == 202:
        load.accepted += 1


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": round(ordered[-1], 2)}


async def wait_healthy(port: int, check: Callable[[], None], timeout_s: float = 60.0) -> None:
    """Until ``GET /readyz`` answers 200 (Kafka and Redis reachable; the bench runs no
    worker, so /healthz would not); ``check`` raises if the server died."""
    deadline = time.monotonic() + timeout_s
    raw = f"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    while True:
        check()
        try:
            conn = await Connection.open("127.0.0.1", port)
            status = await conn.request(raw)
            await conn.close()
            if status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"gateway not healthy on port {port} within {timeout_s} s")
        await asyncio.sleep(0.2)
