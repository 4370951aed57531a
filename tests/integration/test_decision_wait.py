"""The decision long-poll (connectors/decision_wait.py) on a real Redis: a waiter wakes when the
sink's notification arrives, and stopping it never hangs, even when the socket's close
handshake never completes (redis/redis-py#3941, which once hung the console's shutdown)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from connectors.decision_wait import DecisionWaiter
from infra import redis_keys
from infra.settings import Settings
from tests.support.http import until_waiting

pytestmark = pytest.mark.integration


async def _started(settings: Settings) -> tuple[Redis, DecisionWaiter]:
    client = Redis.from_url(settings.redis.dsn, socket_timeout=5, socket_connect_timeout=5)
    waiter = DecisionWaiter.from_url(client, settings.redis.dsn)
    waiter.start()
    async with asyncio.timeout(10):
        await waiter.subscribed.wait()
    return client, waiter


def test_a_waiting_request_wakes_on_the_notification(stack: Settings) -> None:
    purchase_id = f"pur_{uuid.uuid4().hex[:12]}"

    async def scenario():
        client, waiter = await _started(stack)
        try:
            waiting = asyncio.create_task(waiter.get(purchase_id, timeout_s=20.0))
            await until_waiting(waiter)
            loop = asyncio.get_running_loop()
            started = loop.time()
            await client.set(redis_keys.decision(purchase_id), b'{"decision":"APPROVED"}', ex=60)
            await client.publish(redis_keys.DECISION_STORED, purchase_id)
            raw = await waiting
            return raw, loop.time() - started
        finally:
            await waiter.stop()
            await client.aclose()

    raw, took = asyncio.run(scenario())
    assert raw == b'{"decision":"APPROVED"}'
    assert took < 1.5  # the notification woke it, not the 2 s recheck


def test_stop_returns_when_the_socket_close_never_completes(
    stack: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario():
        client, waiter = await _started(stack)
        never = asyncio.get_running_loop().create_future()

        async def wait_closed_forever(self) -> None:
            await never

        # From here on every socket close handshake hangs, as in redis/redis-py#3941.
        monkeypatch.setattr(asyncio.StreamWriter, "wait_closed", wait_closed_forever)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(10.0):
                await waiter.stop()
            return loop.time() - started
        finally:
            monkeypatch.undo()
            await client.aclose()

    assert asyncio.run(scenario()) < 1.0
