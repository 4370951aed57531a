"""Helpers shared by the sink tests and the sink benchmark: record builders, a loop running
in a thread that is always stopped, and waiting on a condition with a deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from infra.topics import TopicSpec
from sinks.base import Record
from sinks.runner import SinkLoop

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
VERDICTS = ("APPROVED", "REQUIRE_2FA", "MANUAL_REVIEW", "BLOCKED")


def decision(n: int, **overrides: Any) -> dict[str, Any]:
    """A Decision record for purchase ``p-{n}``."""
    occurred = T0 + timedelta(seconds=n)
    record = {
        "decision_id": f"dec_p-{n}",
        "purchase_id": f"p-{n}",
        "wallet": f"0x{n:040x}",
        "organizer_id": "org-1",
        "decision": VERDICTS[n % 4],
        "score": (n % 100) / 100,
        "model_score": 0.5,
        "rule_score": 0.25,
        "model_version": "m-1",
        "rules_version": "r-1",
        "reasons": [{"code": "velocity_1h", "category": "behavioral", "score": 0.2, "detail": "3"}],
        "contributions": {"velocity_1h": 0.1},
        "features": {"velocity_1h": 3.0},
        "occurred_at": occurred,
        "decided_at": occurred + timedelta(milliseconds=12),
        "latency_ms": 12.0,
        "challenger_version": None,
        "challenger_score": None,
    }
    record.update(overrides)
    return record


def security_event(n: int, kind: str, at: datetime, **overrides: Any) -> dict[str, Any]:
    record = {
        "event_id": f"se-{n}",
        "occurred_at": at,
        "kind": kind,
        "severity": "MEDIUM",
        "source": "webhook",
        "ip": None,
        "wallet": None,
        "user_id": None,
        "purchase_id": None,
        "details": {},
    }
    record.update(overrides)
    return record


def records(spec: TopicSpec, values: list[dict[str, Any]], offset: int = 0) -> list[Record]:
    """Decoded records as the runner hands them to a sink."""
    return [
        Record(spec, v, None, spec.name, 0, offset + i, None) for i, v in enumerate(values)
    ]


def wait_until(condition: Callable[[], Any], timeout: float, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns a truthy value; TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout}s (last: {result!r})")
        pause.wait(0.05)


@contextmanager
def running(loop: SinkLoop, join_timeout: float = 30.0) -> Iterator[SinkLoop]:
    """Run ``loop`` in a thread for the ``with`` block; always stop and join it."""
    thread = threading.Thread(target=_run_quietly(loop), name=f"sink-{loop.sink.name}")
    thread.start()
    try:
        yield loop
    finally:
        loop.stop()
        thread.join(join_timeout)
        if thread.is_alive():
            raise RuntimeError(f"sink loop {loop.sink.name} did not stop in {join_timeout}s")


def _run_quietly(loop: SinkLoop) -> Callable[[], None]:
    def target() -> None:
        try:
            loop.run()
        except BaseException:  # kept in loop.error for the test to assert on
            pass

    return target
