"""Stopping background tasks for sure, in bounded time.

One ``task.cancel()`` is not always enough on Python 3.11: ``asyncio.wait_for`` returns the
result it waited for when the cancellation arrives just as that result does (CPython
gh-86296, fixed in 3.12 by building ``wait_for`` on ``asyncio.timeout``). psycopg_pool waits
for a connection that way (``WaitingClient.wait``; psycopg/psycopg#1413 leaves it to 3.12): a
console stopped while its rollup refresher's first connection was arriving saw the refresher
get the connection and carry on, and the shutdown waited for it forever. ``stop_tasks``
cancels again any task still running after a grace period, and gives up (logging it) after a
bound, so a stop ends either way. Our own code bounds waits with ``asyncio.timeout``, which
does not lose a cancellation (ruff bans ``asyncio.wait_for``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

log = logging.getLogger(__name__)


async def stop_tasks(
    tasks: Iterable[asyncio.Task], within_s: float, grace_s: float = 1.0
) -> set[asyncio.Task]:
    """Cancel ``tasks`` and wait until they end, cancelling again every ``grace_s`` those
    still running; returns (and logs) those still running after ``within_s``. Errors the
    tasks ended with are logged. A cancellation of the caller is passed on."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    tasks = list(tasks)
    running = {task for task in tasks if not task.done()}
    while running and (left := deadline - loop.time()) > 0:
        for task in running:
            task.cancel()
        _, running = await asyncio.wait(running, timeout=min(grace_s, left))
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.warning("%s ended with %r", task.get_name(), task.exception())
    for task in running:
        log.warning("%r still running %s s after it was cancelled", task, within_s)
    return running
