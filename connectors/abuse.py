"""Unauthenticated traffic costs the gateway little and Kafka nothing per request.

- ``FailureLimiter``: failed authentications per source (an IPv4 address, an IPv6 /64) over a
  sliding window, in this process's memory. A source over the limit is refused (429) before
  its body is read or its signature checked, until its oldest failure leaves the window.
- ``FailureDigest``: failed authentications (and pre-auth refusals) are counted per source and
  published as ONE ``webhook_auth_failed`` security event per source per window, with the
  counts, instead of one event per 401.

Both are bounded (``max_sources``): a flood of sources cannot grow memory; beyond the bound,
the oldest source is forgotten (limiter) or counts go to a source-less bucket (digest).
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.security_events import WEBHOOK_AUTH_FAILED, security_event

OTHERS = ""  # the digest's bucket for sources beyond max_sources


class FailureLimiter:
    def __init__(
        self,
        limit: int,
        window_s: float = 60.0,
        max_sources: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.limit, self.window_s, self.max_sources = limit, window_s, max_sources
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, source: str) -> int | None:
        """Seconds until ``source`` may try again, or None when it is not over the limit."""
        times = self._recent(source)
        if self.limit <= 0 or times is None or len(times) < self.limit:
            return None
        return max(1, int(-(-(times[0] + self.window_s - self.clock()) // 1)))

    def failed(self, source: str) -> None:
        times = self._recent(source)
        if times is None:
            times = self._failures[source] = deque(maxlen=max(1, self.limit))
            while len(self._failures) > self.max_sources:
                self._failures.popitem(last=False)
        times.append(self.clock())
        self._failures.move_to_end(source)

    def _recent(self, source: str) -> deque[float] | None:
        times = self._failures.get(source)
        if times is None:
            return None
        cutoff = self.clock() - self.window_s
        while times and times[0] <= cutoff:
            times.popleft()
        if not times:
            del self._failures[source]
            return None
        return times


@dataclass
class _Bucket:
    failures: Counter[str] = field(default_factory=Counter)  # reason -> count
    endpoints: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    first_at: datetime | None = None


class FailureDigest:
    """Counts per source; ``due()`` returns one security event per source of each closed
    window (the window starts at the first failure seen after the previous one closed)."""

    def __init__(
        self,
        window_s: float = 60.0,
        max_sources: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.window_s, self.max_sources = window_s, max_sources
        self.clock, self.wall = clock, wall
        self._buckets: dict[str, _Bucket] = {}
        self._opened: float | None = None

    def failed(self, source: str, reason: str, endpoint: str) -> None:
        bucket = self._bucket(source)
        bucket.failures[reason] += 1
        bucket.endpoints[endpoint] += 1

    def refused(self, source: str) -> None:
        self._bucket(source).refused += 1

    def due(self, force: bool = False) -> list[dict[str, Any]]:
        """The events of the window if it is over (or ``force``); the window is reset."""
        if self._opened is None or (not force and self.clock() - self._opened < self.window_s):
            return []
        buckets, self._buckets, self._opened = self._buckets, {}, None
        return [self._event(source, b) for source, b in buckets.items()]

    def _bucket(self, source: str) -> _Bucket:
        if self._opened is None:
            self._opened = self.clock()
        if source not in self._buckets and len(self._buckets) >= self.max_sources:
            source = OTHERS
        bucket = self._buckets.get(source)
        if bucket is None:
            bucket = self._buckets[source] = _Bucket(first_at=self.wall())
        return bucket

    def _event(self, source: str, b: _Bucket) -> dict[str, Any]:
        details = {
            "count": sum(b.failures.values()),
            "refused_before_auth": b.refused,
            "reasons": _joined(b.failures),
            "endpoints": _joined(b.endpoints),
            "window_s": self.window_s,
            "reason": b.failures.most_common(1)[0][0] if b.failures else "refused_before_auth",
        }
        return security_event(WEBHOOK_AUTH_FAILED, "MEDIUM", ip=source or None,
                              details=details, now=b.first_at)  # fmt: skip


def _joined(counts: Counter[str]) -> str:
    return ",".join(f"{name}:{n}" for name, n in counts.most_common())
