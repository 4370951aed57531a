"""Long-poll for a decision without polling Redis in a loop.

One Redis subscription per process to ``sentinel:decision-stored`` (the Redis sink publishes
the purchase id whenever it stores a decision, sinks/redis.py): a request that waits for a
decision registers an ``asyncio.Event`` under its purchase id and reads the key again only
when the notification arrives (or, as a safety net for a dropped subscription, every
``recheck_s``). ``WaitSlots`` caps how many waits each client holds at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from connectors.stopping import stop_tasks
from infra import redis_keys

log = logging.getLogger(__name__)


class DecisionWaiter:
    def __init__(self, redis: Redis, subscriber: Redis, recheck_s: float = 2.0):
        """``redis`` reads keys; ``subscriber`` (a client without a socket timeout, since a
        subscription is idle between messages) holds the subscription."""
        self.redis = redis
        self.subscriber = subscriber
        self.recheck_s = recheck_s
        self._waiting: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task | None = None
        self.subscribed = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="decision-waiter")

    async def stop(self, within_s: float = 5.0) -> None:
        if self._task is not None:
            await stop_tasks([self._task], within_s)
        await self.subscriber.aclose()

    @classmethod
    def from_url(cls, redis: Redis, url: str) -> DecisionWaiter:
        return cls(redis, Redis.from_url(url, health_check_interval=30, socket_connect_timeout=5))

    async def get(self, purchase_id: str, timeout_s: float = 0.0) -> bytes | None:
        """The stored decision JSON, waiting up to ``timeout_s`` for it to be stored."""
        key = redis_keys.decision(purchase_id)
        raw = await self.redis.get(key)
        if raw is not None or timeout_s <= 0:
            return raw
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        event = asyncio.Event()
        self._waiting.setdefault(purchase_id, set()).add(event)
        try:
            raw = await self.redis.get(key)  # stored between the first read and registering
            while raw is None and (left := deadline - loop.time()) > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(left, self.recheck_s)):
                        await event.wait()
                event.clear()
                raw = await self.redis.get(key)
            return raw
        finally:
            waiters = self._waiting.get(purchase_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiting[purchase_id]

    def waiting(self) -> int:
        return sum(len(v) for v in self._waiting.values())

    def _wake(self, purchase_id: str | None = None) -> None:
        if purchase_id is None:
            groups = list(self._waiting.values())
        else:
            groups = [self._waiting.get(purchase_id, set())]
        for events in groups:
            for event in events:
                event.set()

    async def _listen(self) -> None:
        while True:
            pubsub = self.subscriber.pubsub()
            try:
                await pubsub.subscribe(redis_keys.DECISION_STORED)
                self.subscribed.set()
                self._wake()  # anything stored while we were not subscribed
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._wake(message["data"].decode())
            except RedisError as exc:
                log.warning("decision subscription lost (%r); resubscribing in 1 s", exc)
            finally:
                await close_pubsub(pubsub)
            self.subscribed.clear()
            await asyncio.sleep(1.0)


async def close_pubsub(pubsub: PubSub) -> None:
    """Close a subscription without waiting for the socket's close handshake.

    ``PubSub.aclose`` waits on ``StreamWriter.wait_closed``, which can wait forever
    (redis/redis-py#3941): a cancelled listener then never finishes and whoever stops it hangs.
    Dropping the socket first (``nowait``) leaves ``aclose`` only the bookkeeping.
    """
    if pubsub.connection is not None:
        await pubsub.connection.disconnect(nowait=True)
    await pubsub.aclose()


class TooManyWaits(Exception):
    pass


class WaitSlots:
    """At most ``per_client`` concurrent waits per client id."""

    def __init__(self, per_client: int):
        self.per_client = per_client
        self._held: Counter[str] = Counter()

    @contextlib.contextmanager
    def hold(self, client: str):
        if self._held[client] >= self.per_client:
            raise TooManyWaits(client)
        self._held[client] += 1
        try:
            yield
        finally:
            self._held[client] -= 1
            if self._held[client] <= 0:
                del self._held[client]
