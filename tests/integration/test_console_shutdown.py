"""The console's shutdown on real PostgreSQL and Redis is bounded even when a background task
lost its cancellation, as the rollup refresher did when psycopg_pool's ``asyncio.wait_for``
handed it a connection together with the cancellation (Python 3.11, CPython gh-86296): the
console's close then waited for it forever (test_sessions_expire, under load)."""

from __future__ import annotations

import asyncio

import pytest

from connectors.console.state import ConsoleState
from infra.settings import Settings
from tests.support.console import migrated_database, with_database
from tests.support.hangs import bounded, loses_its_first_cancellation

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dsn(stack: Settings):
    with migrated_database(stack) as dsn:
        yield dsn


def test_close_stops_a_background_task_that_lost_its_cancellation(
    settings: Settings, dsn: str
) -> None:
    async def scenario():
        state = await ConsoleState.open(with_database(settings, dsn))
        state.start_background()  # the refresher, as the app's lifespan starts it
        started = asyncio.Event()
        state.tasks.append(asyncio.create_task(loses_its_first_cancellation(started)))
        await started.wait()
        loop = asyncio.get_running_loop()
        began = loop.time()
        async with bounded("closing the console", 30.0):  # before the fix: forever
            await state.close()
        return loop.time() - began, [task.cancelled() for task in state.tasks], state.pool.closed

    took, cancelled, pool_closed = asyncio.run(scenario())
    assert cancelled == [True, True] and pool_closed
    assert took < 10.0  # a grace period for the lost cancellation, and the pool's close
