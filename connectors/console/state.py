"""What the console app holds while it runs: the PostgreSQL pool, Redis, the access checker,
the decision waiter and the label publisher, opened by the lifespan and closed after it."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import orjson
import psycopg
import redis
import redis.asyncio as aioredis
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool

from connectors.console.access import Access
from connectors.console.rollups import run_refresher
from connectors.console.sampler import Sampler
from connectors.decision_wait import DecisionWaiter, WaitSlots
from connectors.stopping import stop_tasks
from infra.settings import Settings
from sinks.blocklist import Blocklist

# UTC for every timestamp the rollups are cut on. The console's queries are index lookups that
# run in milliseconds, but those over the daily partitions (a wallet's purchases, a case's
# decision) cost far more to plan than to run, once per partition:
# - no JIT: costed above jit_above_cost, PostgreSQL compiled every partition's expressions
#   first (1 299 functions, 2.7 s for a wallet's links over 30 daily partitions, run in 20 ms);
# - every query is prepared on its first run (prepare_threshold 0) with one generic plan, kept
#   by the connection: partitions are then pruned when it runs, not planned again each time
#   (planning a wallet's links took 25-70 ms, its generic plan 0.1 ms). PostgreSQL plans again
#   by itself when a partition is attached or dropped.
POOL_OPTIONS = "-c TimeZone=UTC -c jit=off -c plan_cache_mode=force_generic_plan"
POOL_KWARGS = {"autocommit": True, "prepare_threshold": 0, "options": POOL_OPTIONS}
STOP_TASKS_S = 10.0  # the refresher and the sampler, cancelled mid-query or mid-sample


async def configure(conn: psycopg.AsyncConnection) -> None:
    """jsonb parsed by orjson (a review queue's page holds 240 reasons and contributions; the
    standard library's parser took a quarter of its time)."""
    set_json_loads(orjson.loads, conn)


@dataclass
class ConsoleState:
    settings: Settings
    pool: AsyncConnectionPool
    redis: aioredis.Redis
    access: Access
    waiter: DecisionWaiter
    slots: WaitSlots
    sampler: Sampler
    blocklist: Blocklist  # sync client: call it in a thread
    tasks: list[asyncio.Task] = field(default_factory=list)
    publisher: object | None = None  # connectors.publisher.Publisher, opened on first use

    @classmethod
    async def open(cls, settings: Settings) -> ConsoleState:
        pool = AsyncConnectionPool(
            settings.postgres.dsn, min_size=2, max_size=8, open=False,
            kwargs=POOL_KWARGS, configure=configure,
        )
        await pool.open(wait=False)
        client = aioredis.from_url(settings.redis.dsn, socket_timeout=5, socket_connect_timeout=5)
        waiter = DecisionWaiter.from_url(client, settings.redis.dsn)
        waiter.start()
        blocklist = Blocklist(redis.Redis.from_url(settings.redis.dsn, socket_timeout=5))
        return cls(
            settings, pool, client, Access(pool), waiter,
            WaitSlots(settings.console.waits_per_client), Sampler(settings), blocklist,
        )

    def start_background(self) -> None:
        """The rollup refresher, stopped by ``close``."""
        refresher = run_refresher(self.pool, self.settings.console.rollup_refresh_s)
        self.tasks.append(asyncio.create_task(refresher, name="console-rollups"))

    async def sampled(self, first_wait_s: float = 15.0) -> Sampler:
        """The sampler, started by the first section that needs it (the Kafka and gateway
        samples cost seconds; a console nobody looks at the System page of takes none)."""
        if not self.sampler.started:
            self.sampler.started = True
            self.tasks.append(asyncio.create_task(self.sampler.run(), name="console-sampler"))
        with contextlib.suppress(TimeoutError):  # the page says "no sample yet"
            async with asyncio.timeout(first_wait_s):
                await self.sampler.ready.wait()
        return self.sampler

    def label_publisher(self):
        """The one producer of this process (connectors/publisher.py), opened on first use."""
        if self.publisher is None:
            from connectors.publisher import Publisher

            self.publisher = Publisher(self.settings, delivery_timeout_ms=10_000)
        return self.publisher

    async def close(self) -> None:
        """Every step is bounded: the tasks 10 s (``stop_tasks``), a Kafka snapshot in flight
        10 s, the decision waiter 5 + 5 s, the label producer's flush 10 + 5 s, Redis 5 s
        (socket_connect_timeout bounds a disconnect), the pool 5 s. Usually milliseconds."""
        await stop_tasks(self.tasks, STOP_TASKS_S)
        await self.sampler.close()
        await self.waiter.stop()
        if self.publisher is not None:
            await asyncio.to_thread(self.publisher.close, 10.0)
        await self.redis.aclose()
        await asyncio.to_thread(self.blocklist.client.close)
        await self.pool.close()
