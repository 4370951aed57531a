"""``stop_tasks`` (connectors/stopping.py): a task that lost its cancellation is cancelled
again, one that never stops is given up after the bound, and the caller's own cancellation is
passed on."""

from __future__ import annotations

import asyncio
import logging

import pytest

from connectors.stopping import stop_tasks
from tests.support.hangs import loses_its_first_cancellation, until_cancelled

pytestmark = pytest.mark.unit


async def never_stops(started: asyncio.Event, released: asyncio.Event,
                      cancelled: asyncio.Event | None = None) -> None:
    started.set()
    while not released.is_set():
        try:
            await until_cancelled()
        except asyncio.CancelledError:
            if cancelled is not None:
                cancelled.set()


def test_a_task_that_lost_its_cancellation_is_cancelled_again() -> None:
    async def scenario():
        started = asyncio.Event()
        task = asyncio.create_task(loses_its_first_cancellation(started))
        await started.wait()
        loop = asyncio.get_running_loop()
        began = loop.time()
        async with asyncio.timeout(30):  # one cancellation alone: this hangs
            left = await stop_tasks([task], within_s=20.0, grace_s=0.2)
        return left, task.cancelled(), loop.time() - began

    left, cancelled, took = asyncio.run(scenario())
    assert left == set() and cancelled
    assert took < 5.0  # a grace period or two, not the 20 s bound


def test_a_task_that_never_stops_is_left_after_the_bound(caplog) -> None:
    async def scenario():
        started, released = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(never_stops(started, released), name="stubborn")
        await started.wait()
        loop = asyncio.get_running_loop()
        began = loop.time()
        left = await stop_tasks([task], within_s=0.5, grace_s=0.1)
        took = loop.time() - began
        released.set()  # let it end, so that the test does
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return left == {task}, took

    with caplog.at_level(logging.WARNING, logger="connectors.stopping"):
        left, took = asyncio.run(scenario())
    assert left and 0.5 <= took < 5.0  # the bound, then it returns
    assert "stubborn" in caplog.text and "still running" in caplog.text


def test_the_callers_cancellation_is_passed_on() -> None:
    async def scenario():
        started, released, cancelled = asyncio.Event(), asyncio.Event(), asyncio.Event()
        stubborn = asyncio.create_task(never_stops(started, released, cancelled))
        await started.wait()
        stopper = asyncio.create_task(stop_tasks([stubborn], within_s=30.0, grace_s=0.1))
        async with asyncio.timeout(5):
            await cancelled.wait()  # the stopper is at work
        stopper.cancel()
        outcome = await asyncio.gather(stopper, return_exceptions=True)
        released.set()
        stubborn.cancel()
        await asyncio.gather(stubborn, return_exceptions=True)
        return outcome[0], stopper.cancelled()

    outcome, cancelled = asyncio.run(scenario())
    assert isinstance(outcome, asyncio.CancelledError) and cancelled


def test_an_error_a_task_ended_with_is_logged(caplog) -> None:
    async def fails_when_cancelled(started: asyncio.Event) -> None:
        started.set()
        try:
            await until_cancelled()
        except asyncio.CancelledError:
            raise ValueError("cleanup failed") from None

    async def scenario():
        started = asyncio.Event()
        task = asyncio.create_task(fails_when_cancelled(started), name="refresher")
        await started.wait()
        return await stop_tasks([task], within_s=2.0)

    with caplog.at_level(logging.WARNING, logger="connectors.stopping"):
        assert asyncio.run(scenario()) == set()
    assert "refresher ended with ValueError('cleanup failed')" in caplog.text
