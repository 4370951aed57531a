"""Idempotency keys in Redis: the first response is stored for 24 h and replayed to repeats.

A request claims its key atomically during admission (``connectors.ratelimit``), with a claim
that names the digest of its record and expires after a minute. Once the broker acknowledged
the record, ``finish`` replaces the claim with the response for ``ttl_ms``; if the record was
not acknowledged, ``release`` drops the claim so that the caller's retry publishes. A repeat
that finds a claim waits (``resolve``) for the first request's outcome.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from typing import Any

import orjson

from connectors.redis_batch import RedisBatcher
from infra import redis_keys

DAY_MS = 24 * 3600 * 1000
POLL_S = 0.01
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: dict[str, Any]


class KeyReused(ValueError):
    """The idempotency key was first used with a different record."""


class InFlight(RuntimeError):
    """The first request with this key has not finished (or failed) within the deadline."""


class IdempotencyStore:
    def __init__(self, redis: RedisBatcher, namespace: str, ttl_ms: int = DAY_MS):
        self._redis = redis
        self._namespace = namespace
        self._ttl_ms = ttl_ms

    def key(self, kind: str, idempotency_key: str) -> str:
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()
        return redis_keys.idempotency(self._namespace, kind, digest)

    @staticmethod
    def claim(digest: str) -> bytes:
        return orjson.dumps({"pending": True, "digest": digest})

    async def finish(self, key: str, digest: str, response: StoredResponse) -> None:
        value = {"status": response.status, "body": response.body, "digest": digest}
        await self._redis.execute("SET", key, orjson.dumps(value), "PX", self._ttl_ms)

    async def release(self, key: str, claim: bytes) -> None:
        await self._redis.execute("EVAL", RELEASE, 1, key, claim)

    async def resolve(self, key: str, stored: bytes, digest: str, deadline: float):
        """The first response for a repeat; waits while the first request is in flight.

        Raises ``KeyReused`` on a digest mismatch and ``InFlight`` when the first request
        did not finish by ``deadline`` (``time.monotonic()``) or gave up its claim.
        """
        while True:
            value = orjson.loads(stored)
            if value.get("digest") != digest:
                raise KeyReused("Idempotency-Key was already used with a different body")
            if not value.get("pending"):
                return StoredResponse(value["status"], value["body"])
            if time.monotonic() >= deadline:
                raise InFlight("a request with this Idempotency-Key is still in flight")
            await asyncio.sleep(POLL_S)
            stored = await self._redis.execute("GET", key)
            if stored is None:
                raise InFlight("the first request with this Idempotency-Key failed; retry")


def record_digest(record: Any) -> str:
    """A digest of a validated record's content (format-independent)."""
    return hashlib.sha256(record.model_dump_json().encode()).hexdigest()[:32]
