"""Admission in one Redis round trip: idempotency lookup, sliding-window limits, claim.

One Lua script (``EVAL``, pipelined with other requests' by ``RedisBatcher``) per request, atomic on the Redis server and timed by its clock:

1. the idempotency key exists → ``Duplicate`` (the stored first response, or "pending"); no
   limit is charged, nothing will be published;
2. any sliding window (a sorted set of request timestamps over the last ``window_ms``) is full
   → ``RateLimited`` with the time until its oldest entry leaves; nothing is charged;
3. else every window records this request and the idempotency key is claimed (``SET``, with a
   short TTL so that a crashed request frees it) → ``Admitted``.

Keys of one request may live in different hash slots: run it on a single Redis node (or give
the keys a common hash tag on a cluster).
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.base import RateLimited
from connectors.redis_batch import RedisBatcher

WINDOW_MS = 60_000

ADMIT = """
local existing = redis.call('GET', KEYS[1])
if existing then return {0, existing} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #KEYS - 1
for i = 1, n do
  local key, limit, window = KEYS[i + 1], tonumber(ARGV[2 + 2 * i]), tonumber(ARGV[3 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  if count >= limit then
    local retry = window
    local oldest = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    if oldest[2] then retry = tonumber(oldest[2]) + window - now end
    return {1, i, retry}
  end
end
for i = 1, n do
  redis.call('ZADD', KEYS[i + 1], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[i + 1], tonumber(ARGV[3 + 2 * i]))
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return {2}
"""


@dataclass(frozen=True)
class Limit:
    """At most ``limit`` requests per ``window_ms`` for the sliding window at ``key``."""

    name: str  # "ip", "wallet", "global": reported in 429s and security events
    key: str
    limit: int
    window_ms: int = WINDOW_MS


@dataclass(frozen=True)
class Admitted:
    pass


@dataclass(frozen=True)
class Duplicate:
    stored: bytes  # what the first request stored under the idempotency key


class Admission:
    """Runs the admission script; ``claim_ttl_ms`` bounds how long a claim outlives a crash."""

    def __init__(self, redis: RedisBatcher, claim_ttl_ms: int = 60_000):
        self._redis = redis
        self._claim_ttl_ms = claim_ttl_ms

    async def admit(
        self, idem_key: str, claim: bytes, limits: list[Limit], member: str
    ) -> Admitted | Duplicate:
        """``Admitted`` or ``Duplicate``; raises ``RateLimited`` when a window is full.

        ``member`` must be unique per request (it is the window entry).
        """
        keys = [idem_key, *(limit.key for limit in limits)]
        args: list[str | int | bytes] = [member, claim, self._claim_ttl_ms]
        for limit in limits:
            args += [limit.limit, limit.window_ms]
        result = await self._redis.execute("EVAL", ADMIT, len(keys), *keys, *args)
        if result[0] == 0:
            return Duplicate(result[1])
        if result[0] == 1:
            refused = limits[int(result[1]) - 1]
            raise RateLimited(refused.name, max(1, -(-int(result[2]) // 1000)))
        return Admitted()
