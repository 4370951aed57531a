"""Repeat offenders get longer automated responses, never permanent ones.

In the manner of fail2ban's ``bantime.increment`` (ban time × factor per earlier ban, up to
``bantime.maxtime``): the n-th offence of a target within ``memory_ms`` lasts
``ttl × factor^(n-1)``, capped at ``max_ttl_ms``. Offences are counted per target (an IP, a
wallet, an account) across rules, once per alert, in Redis: ``sentinel:offences:{kind}:{target}``
is a hash of alert id -> time, forgotten ``memory_ms`` after the latest offence. A retried
response (same alert) does not count again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from infra import redis_keys

DAY_MS = 24 * 3_600_000

# KEYS: offences hash. ARGV: alert id, now ms, memory ms. Returns the number of offences.
_RECORD = """
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return redis.call('HLEN', KEYS[1])
"""


@dataclass(frozen=True)
class RepeatPolicy:
    factor: float = 2.0
    max_ttl_ms: int = 7 * DAY_MS
    memory_ms: int = 30 * DAY_MS

    def __post_init__(self) -> None:
        if self.factor < 1 or self.max_ttl_ms <= 0 or self.memory_ms < 0:
            raise ValueError(f"repeat policy needs factor >= 1, max ttl > 0, memory >= 0: {self}")

    def ttl_ms(self, base_ms: int | None, offences: int) -> int:
        """How long the ``offences``-th response lasts (a missing base: the ceiling)."""
        if base_ms is None or base_ms >= self.max_ttl_ms:
            return self.max_ttl_ms
        steps = max(1, offences) - 1
        if steps == 0 or self.factor == 1:
            return base_ms
        if steps >= math.log(self.max_ttl_ms / base_ms, self.factor):
            return self.max_ttl_ms
        return min(self.max_ttl_ms, int(base_ms * self.factor**steps))


class Offences:
    """Counts each target's offences in Redis, once per alert."""

    def __init__(
        self,
        client: redis.Redis,
        memory_ms: int,
        clock: Callable[[], float] = time.time,
        namespace: str = "sentinel",
    ):
        self.client = client
        self.memory_ms = memory_ms
        self.clock = clock
        self.namespace = namespace
        self._record = client.register_script(_RECORD)

    def record(self, kind: str, target: str, alert_id: str) -> int:
        """Count ``alert_id`` as an offence of ``target``; returns its offences so far."""
        key = redis_keys.offences(kind, target, self.namespace)
        now = int(self.clock() * 1000)
        return int(self._record(keys=[key], args=[alert_id, now, max(1, self.memory_ms)]))

    def forget(self, kind: str, target: str) -> None:
        self.client.delete(redis_keys.offences(kind, target, self.namespace))
