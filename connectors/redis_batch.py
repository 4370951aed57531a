"""Redis commands of concurrent requests in one pipeline: one round trip for many requests.

Each request still makes one logical call (``await batcher.execute("EVAL", ...)``); the calls
issued in the same event-loop iteration leave together in one non-transactional pipeline, so
under load the per-command cost of the client (connection checkout, locks, syscalls) is paid
once per batch instead of once per request. A lone request is sent at once, unbatched.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError


class RedisBatcher:
    def __init__(self, redis: Redis, max_batch: int = 512):
        self._redis = redis
        self._max_batch = max_batch
        self._queue: list[tuple[tuple[Any, ...], asyncio.Future]] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task] = set()

    async def execute(self, *command: Any) -> Any:
        """Run one command (``"EVAL", script, numkeys, ...``, ``"SET", ...``) in the next batch."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((command, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        while self._queue:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            task = asyncio.create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[tuple[Any, ...], asyncio.Future]]) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for command, _ in batch:
                    pipe.execute_command(*command)
                results = await pipe.execute(raise_on_error=False)
        except asyncio.CancelledError:
            self._settle(batch, [RedisError("cancelled")] * len(batch))
            raise
        except Exception as exc:  # connection errors, timeouts: every caller hears of it
            error = exc if isinstance(exc, RedisError) else RedisError(repr(exc))
            results = [error] * len(batch)
        self._settle(batch, results)

    @staticmethod
    def _settle(batch: list[tuple[tuple[Any, ...], asyncio.Future]], results: list[Any]) -> None:
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
