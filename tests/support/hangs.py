"""A time bound on one step of a test that, when it expires, says where everything was.

``asyncio.timeout`` alone reports only the await the test itself was in (a ``gather`` or a
close); the task it waited for, and the threads, have moved on by the time the error is shown.
``bounded`` takes the picture first: every task's chain of awaits (walked through
``cr_await``, since ``Task.print_stack`` shows only a suspended coroutine's outer frame) and
every thread's stack, then times out with that picture in the error's message.

``loses_its_first_cancellation`` is a background task that misbehaves the way the console's
refresher did (connectors/stopping.py), for tests of whatever has to stop it.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


@asynccontextmanager
async def bounded(what: str, seconds: float) -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    picture: list[str] = []

    def expire(scope: asyncio.Timeout) -> None:
        picture.append(where_everything_is())
        scope.reschedule(loop.time())

    try:
        async with asyncio.timeout(None) as scope:
            handle = loop.call_later(seconds, expire, scope)
            try:
                yield
            finally:
                handle.cancel()
    except TimeoutError as exc:
        if not picture:
            raise  # not this bound's
        raise TimeoutError(f"{what} took over {seconds} s; then:\n{picture[0]}") from exc


async def loses_its_first_cancellation(started: asyncio.Event) -> None:
    """What the console's refresher did when psycopg_pool's ``asyncio.wait_for`` handed it a
    connection together with its cancellation (Python 3.11, CPython gh-86296): it ran on."""
    started.set()
    try:
        await until_cancelled()
    except asyncio.CancelledError:
        pass  # lost
    await until_cancelled()  # the next round


async def until_cancelled() -> None:
    """Wait on what never happens: only a cancellation ends it."""
    await asyncio.Event().wait()


def where_everything_is() -> str:
    """Every task's awaits, innermost last, and every thread's stack."""
    parts = []
    for task in asyncio.all_tasks():
        parts.append(f"--- task {task.get_name()!r}\n" + "".join(_awaits(task)))
    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        stack = "".join(traceback.format_stack(frame))
        parts.append(f"--- thread {names.get(ident, ident)!r}\n{stack}")
    return "\n".join(parts)


def _awaits(task: asyncio.Task) -> list[str]:
    lines = []
    link: object = task.get_coro()
    while (frame := _attribute(link, "cr_frame", "gi_frame", "ag_frame")) is not None:
        code = frame.f_code
        lines += traceback.format_list([(code.co_filename, frame.f_lineno, code.co_name, None)])
        link = _attribute(link, "cr_await", "gi_yieldfrom", "ag_await")
    if link is not None:  # a future, a gather, a wrapped awaitable: what the chain ends on
        lines.append(f"  awaiting {link!r}\n")
    return lines


def _attribute(link: object, *names: str) -> object | None:
    """The first of a coroutine's, generator's or async generator's ``names`` it has."""
    return next((v for n in names if (v := getattr(link, n, None)) is not None), None)
