"""The console's rollup refresher stops when cancelled, even when the cancellation reaches it
as a query error (the console's shutdown gathers it: a refresher that swallowed it hung the
shutdown until the test's 60 s limit)."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import psycopg
import pytest

from connectors.console import rollups

pytestmark = pytest.mark.unit


class _Pool:
    @asynccontextmanager
    async def connection(self):
        yield None


def test_a_refresher_cancelled_mid_query_stops(monkeypatch) -> None:
    started = asyncio.Event()

    async def refresh(conn) -> None:  # psycopg cancels the statement and raises its error
        started.set()
        try:
            await asyncio.Event().wait()  # a statement that runs until cancelled
        except asyncio.CancelledError as exc:
            raise psycopg.errors.QueryCanceled("canceling statement due to user request") from exc

    monkeypatch.setattr(rollups, "refresh", refresh)

    async def scenario() -> bool:
        task = asyncio.create_task(rollups.run_refresher(_Pool(), every_s=5.0))
        await started.wait()
        task.cancel()
        async with asyncio.timeout(2.0):
            await asyncio.gather(task, return_exceptions=True)
        return task.cancelled()

    assert asyncio.run(scenario())
