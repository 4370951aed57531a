"""What the gateway's probes check.

- ``/livez``: the gateway process answers (for a container's liveness check).
- ``/readyz``: it can accept records: a Kafka broker and Redis answer.
- ``/healthz``: the whole pipeline behind it: Kafka, Redis, PostgreSQL (the system of record
  answers ``SELECT 1``) and the worker (its consumer group, ``SENTINEL_APP_ID``, has live
  members: a worker whose event loop hangs stops heartbeating and leaves the group within
  the session timeout). 503 names what failed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from confluent_kafka import ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient
from redis.exceptions import RedisError

from infra.settings import Settings

TIMEOUT_S = 2.0
LIVE_STATES = {ConsumerGroupState.STABLE, ConsumerGroupState.PREPARING_REBALANCING,
               ConsumerGroupState.COMPLETING_REBALANCING}  # fmt: skip


class Health:
    """One per gateway (holds an admin client for the consumer-group check)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.group = settings.stream.app_id
        self._admin: AdminClient | None = None

    async def ready(self, gateway: Any) -> dict[str, Any]:
        kafka = await asyncio.to_thread(gateway.publisher.broker_reachable, 1.0)
        try:
            redis_ok = bool(await gateway.redis.ping())
        except RedisError:
            redis_ok = False
        return {"kafka": kafka, "redis": redis_ok}

    async def healthy(self, gateway: Any) -> dict[str, Any]:
        ready, postgres, worker = await asyncio.gather(
            self.ready(gateway), self.postgres(), asyncio.to_thread(self.worker)
        )
        return {**ready, "postgres": postgres, "worker": worker}

    async def postgres(self) -> bool:
        try:
            async with asyncio.timeout(TIMEOUT_S):
                conn = await psycopg.AsyncConnection.connect(
                    self.settings.postgres.dsn, connect_timeout=int(TIMEOUT_S), autocommit=True
                )
                async with conn:
                    await conn.execute("SELECT 1")
        except (psycopg.Error, TimeoutError, OSError):
            return False
        return True

    def worker(self) -> dict[str, Any]:
        if self._admin is None:
            self._admin = AdminClient(self.settings.kafka.as_confluent())
        try:
            futures = self._admin.describe_consumer_groups([self.group], request_timeout=TIMEOUT_S)
            description = futures[self.group].result(timeout=TIMEOUT_S)
        except (KafkaException, TimeoutError) as exc:
            return {"alive": False, "group": self.group, "error": str(exc)}
        members = len(description.members)
        alive = members > 0 and description.state in LIVE_STATES
        return {"alive": alive, "group": self.group, "members": members,
                "state": description.state.name}  # fmt: skip


def all_ok(components: dict[str, Any]) -> bool:
    return all(v["alive"] if isinstance(v, dict) else v for v in components.values())
