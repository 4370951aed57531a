"""The chaos run's clients: simulated purchases and logins of one day ending now, plus
brute-force bursts the SIEM must alert on, sent through the signed gateway at a steady rate.

A client behaves as the gateway's contract asks: a 503, a timeout or a refused connection
means "not known to be accepted: retry", so the same record is sent again (signed afresh)
until it is answered, or ``give_up_s`` passed. Records of one wallet (else user) go through
one lane, one after the other, so they reach their partition in order.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import orjson

from connectors.gateway_client import ID_FIELDS, PATHS
from connectors.signature import signed_headers

RETRY_STATUSES = {409, 503}


@dataclass
class Sent:
    statuses: Counter = field(default_factory=Counter)  # (kind, final status) -> count
    accepted: dict[str, set[str]] = field(default_factory=dict)  # kind -> ids answered 202
    retries: int = 0
    gave_up: int = 0


def records(total: int, seed: int, attackers: int) -> list[tuple[str, dict]]:
    """``total`` records: simulated purchases and logins of one day ending now, then
    ``attackers`` bursts of six failed logins from one IP within a minute (each must raise a
    ``brute_force`` alert)."""
    from models.simulator import SimConfig, simulate

    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    config = SimConfig(seed=seed, days=1, n_users=max(500, total * 10), n_shows=20,
                       start=start, fraud_rate=0.05)  # fmt: skip
    out: list[tuple[str, dict]] = []
    for kind, record in simulate(config):
        if len(out) >= total - 6 * attackers:
            break
        if kind in ("purchase", "auth"):
            out.append((kind, record))
    rng = random.Random(seed)
    for n in range(attackers):
        at = start + timedelta(hours=23, minutes=rng.randrange(50))
        ip = f"198.18.{n // 250}.{n % 250 + 1}"
        out += [("auth", {"event_id": f"bf-{seed}-{n}-{i}", "occurred_at": at + timedelta(seconds=i),
                          "kind": "LOGIN_FAILED", "user_id": f"victim-{seed}-{n}", "ip": ip})
                for i in range(6)]  # fmt: skip
    return out


def lanes(items: list[tuple[str, dict]], count: int) -> list[list[tuple[str, dict]]]:
    out: list[list[tuple[str, dict]]] = [[] for _ in range(count)]
    for kind, record in items:
        key = record.get("wallet") or record.get("user_id") or record[ID_FIELDS[kind]]
        out[zlib.crc32(key.encode()) % count].append((kind, record))
    return out


async def drive(base_url: str, secret: bytes, items: list[tuple[str, dict]], rate: float,
                give_up_s: float = 240.0, concurrency: int = 16) -> Sent:
    """Send ``items`` at about ``rate`` records per second in total; retry as the contract
    says. Returns what was answered."""
    sent = Sent()
    per_lane_s = concurrency / rate
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        await asyncio.gather(*(_lane(client, secret, lane, per_lane_s, give_up_s, sent)
                               for lane in lanes(items, concurrency)))  # fmt: skip
    return sent


async def _lane(client, secret, lane, every_s, give_up_s, sent: Sent) -> None:
    for kind, record in lane:
        started = time.monotonic()
        status = await _deliver(client, secret, kind, record, give_up_s, sent)
        sent.statuses[(kind, status)] += 1
        if status == 202:
            sent.accepted.setdefault(kind, set()).add(record[ID_FIELDS[kind]])
        await asyncio.sleep(max(0.0, every_s - (time.monotonic() - started)))


async def _deliver(client, secret, kind, record, give_up_s, sent: Sent) -> int:
    body = orjson.dumps(record)
    key = f"chaos-{uuid.uuid5(uuid.NAMESPACE_URL, body.decode()).hex}"  # same on every retry
    deadline = time.monotonic() + give_up_s
    while True:
        try:
            headers = {"Content-Type": "application/json",
                       **signed_headers(secret, body, idempotency_key=key)}  # fmt: skip
            response = await client.post(PATHS[kind], content=body, headers=headers)
            if response.status_code not in RETRY_STATUSES:
                return response.status_code
        except httpx.TransportError:
            pass  # the gateway was killed or restarts: not known to be accepted
        if time.monotonic() >= deadline:
            sent.gave_up += 1
            return 0
        sent.retries += 1
        await asyncio.sleep(0.5)
