"""What the console app holds while it runs: the PostgreSQL pool, Redis, the access checker,
the decision waiter and the label publisher, opened by the lifespan and closed after it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import redis
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from connectors.console.access import Access
from connectors.console.rollups import run_refresher
from connectors.console.sampler import Sampler
from connectors.decision_wait import DecisionWaiter, WaitSlots
from infra.settings import Settings
from sinks.blocklist import Blocklist


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
            kwargs={"autocommit": True, "options": "-c TimeZone=UTC"},
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
        try:
            await asyncio.wait_for(self.sampler.ready.wait(), first_wait_s)
        except TimeoutError:
            pass  # the page says "no sample yet"
        return self.sampler

    def label_publisher(self):
        """The one producer of this process (connectors/publisher.py), opened on first use."""
        if self.publisher is None:
            from connectors.publisher import Publisher

            self.publisher = Publisher(self.settings, delivery_timeout_ms=10_000)
        return self.publisher

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.sampler.close()
        await self.waiter.stop()
        if self.publisher is not None:
            await asyncio.to_thread(self.publisher.close, 10.0)
        await self.redis.aclose()
        await asyncio.to_thread(self.blocklist.client.close)
        await self.pool.close()
