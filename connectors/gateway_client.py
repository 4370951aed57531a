"""A small client of the webhook gateway: records POSTed with the HMAC signature headers.

    sent = asyncio.run(post_records("http://127.0.0.1:8080", secret, [("purchase", record)]))

Used by ``sentinel demo`` to drive simulated traffic through the same edge as production
(signature, validation, rate limits, idempotency), not straight to Kafka.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx
import orjson

from connectors.signature import signed_headers

PATHS = {"purchase": "/v1/purchases", "auth": "/v1/auth-events", "label": "/v1/labels"}
ID_FIELDS = {"purchase": "purchase_id", "auth": "event_id", "label": "purchase_id"}


@dataclass
class Sent:
    """What the gateway answered: status counts per kind, ids it accepted, first errors."""

    statuses: Counter = field(default_factory=Counter)  # (kind, status) -> count
    accepted: dict[str, list[str]] = field(default_factory=dict)  # kind -> ids answered 202
    errors: list[str] = field(default_factory=list)  # the first few non-2xx/429 answers

    def count(self, kind: str, status: int | None = None) -> int:
        return sum(n for (k, s), n in self.statuses.items()
                   if k == kind and (status is None or s == status))


def lanes(records: Iterable[tuple[str, dict]], count: int) -> list[list[tuple[str, dict]]]:
    """Records split into ``count`` lanes by wallet (else user), order kept within a lane:
    one wallet's records are sent one after the other, so they reach its partition in the
    order given (a reordered burst would be late events, dead-lettered by the worker)."""
    out: list[list[tuple[str, dict]]] = [[] for _ in range(count)]
    for kind, record in records:
        key = record.get("wallet") or record.get("user_id") or record[ID_FIELDS[kind]]
        out[zlib.crc32(key.encode()) % count].append((kind, record))
    return out


async def post_records(base_url: str, secret: bytes, records: Iterable[tuple[str, dict]],
                       concurrency: int = 16) -> Sent:
    """POST every (kind, record) signed with ``secret``, ``concurrency`` lanes at a time."""
    sent = Sent()
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        await asyncio.gather(*(_send(client, secret, lane, sent)
                               for lane in lanes(records, concurrency)))
    return sent


async def _send(client: httpx.AsyncClient, secret: bytes, lane: list[tuple[str, dict]],
                sent: Sent) -> None:
    for kind, record in lane:
        body = orjson.dumps(record)
        headers = {"Content-Type": "application/json", **signed_headers(secret, body)}
        response = await client.post(PATHS[kind], content=body, headers=headers)
        sent.statuses[(kind, response.status_code)] += 1
        if response.status_code == 202:
            sent.accepted.setdefault(kind, []).append(record[ID_FIELDS[kind]])
        elif response.status_code != 429 and len(sent.errors) < 5:
            sent.errors.append(f"{kind} {response.status_code}: {response.text[:300]}")
