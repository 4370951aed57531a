"""Unauthenticated traffic: failed authentications limit their source before the signature
check, and become one security event per source per window, not one per 401."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.abuse import FailureDigest, FailureLimiter

pytestmark = pytest.mark.unit
WALL = datetime(2026, 12, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_source_over_the_failure_limit_is_refused_until_the_window_frees() -> None:
    clock = Clock()
    limiter = FailureLimiter(limit=3, window_s=60, clock=clock)
    for _ in range(3):
        assert limiter.retry_after("192.0.2.1") is None
        limiter.failed("192.0.2.1")
    assert limiter.retry_after("192.0.2.1") == 60
    assert limiter.retry_after("192.0.2.2") is None  # other sources are not concerned
    clock.now += 30.5
    assert limiter.retry_after("192.0.2.1") == 30
    clock.now += 30
    assert limiter.retry_after("192.0.2.1") is None  # the oldest failure left the window


def test_the_limiter_forgets_the_oldest_sources_beyond_its_bound() -> None:
    limiter = FailureLimiter(limit=1, max_sources=2, clock=Clock())
    for source in ("a", "b", "c"):
        limiter.failed(source)
    assert [limiter.retry_after(s) is not None for s in ("a", "b", "c")] == [False, True, True]


def test_one_event_per_source_per_window_with_the_counts() -> None:
    clock = Clock()
    digest = FailureDigest(window_s=60, clock=clock, wall=lambda: WALL)
    for _ in range(50):
        digest.failed("192.0.2.1", "bad_signature", "purchases")
    digest.failed("192.0.2.1", "stale_timestamp", "labels")
    digest.refused("192.0.2.1")
    digest.failed("2001:db8::/64", "missing_headers", "purchases")
    clock.now += 59
    assert digest.due() == []  # the window is still open
    clock.now += 1
    events = {e["ip"]: e for e in digest.due()}
    assert set(events) == {"192.0.2.1", "2001:db8::/64"}
    one = events["192.0.2.1"]
    assert (one["kind"], one["occurred_at"]) == ("webhook_auth_failed", int(WALL.timestamp() * 1000))
    assert one["details"] == {"count": "51", "refused_before_auth": "1",
                              "reasons": "bad_signature:50,stale_timestamp:1",
                              "endpoints": "purchases:50,labels:1", "window_s": "60",
                              "reason": "bad_signature"}  # fmt: skip
    assert digest.due(force=True) == []  # nothing new: nothing to say


def test_the_digest_is_bounded_in_sources() -> None:
    clock = Clock()
    digest = FailureDigest(window_s=1, max_sources=2, clock=clock, wall=lambda: WALL)
    for n in range(10):
        digest.failed(f"192.0.2.{n}", "bad_signature", "purchases")
    events = digest.due(force=True)
    assert len(events) == 3 and {e["ip"] for e in events} == {"192.0.2.0", "192.0.2.1", None}
    assert sum(int(e["details"]["count"]) for e in events) == 10
