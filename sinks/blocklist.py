"""IP and wallet blocklists in Redis with per-entry expiry.

Per kind (``wallet``, ``ip``), a ZSET ``sentinel:blocklist:{kind}`` maps value -> expiry
(epoch ms; ``+inf`` for a permanent entry) and a HASH ``sentinel:blocklist:{kind}:meta``
keeps each entry's reason as JSON. An entry whose expiry has passed is not listed or matched
even before the lazy purge removes it, so expiry is exact to the millisecond.

``contains_many(kind, values)`` is one ``ZMSCORE``: one round trip for a whole batch, which
is how scoring reads the blocklists.
"""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, cast

import redis

from connectors.validation import canonical_ip
from infra import redis_keys

Kind = Literal["wallet", "ip"]
KINDS: tuple[str, ...] = ("wallet", "ip")
FOREVER = float("inf")

# KEYS: zset, meta hash. ARGV: now ms. Removes expired entries and their reasons atomically.
_PURGE = """
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for i = 1, #gone, 1000 do
  redis.call('HDEL', KEYS[2], unpack(gone, i, math.min(i + 999, #gone)))
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return #gone
"""


@dataclass(frozen=True)
class Entry:
    kind: str
    value: str
    reason: str
    added_at_ms: int
    expires_at_ms: int | None  # None: permanent


def normalise(kind: str, value: str) -> str:
    """Wallets lower-case; IPs in the edge's canonical text (``canonical_ip``: an IPv4-mapped
    address as IPv4, no zone id). Raises ValueError if invalid."""
    if kind == "wallet":
        return value.strip().lower()
    if kind == "ip":
        return canonical_ip(value.strip())
    raise ValueError(f"blocklist kind must be one of {KINDS}, not {kind!r}")


def _lookup_form(kind: str, value: str) -> str:
    try:
        return normalise(kind, value)
    except ValueError:
        return value  # an invalid IP cannot be listed, so it simply will not match


class Blocklist:
    def __init__(
        self,
        client: redis.Redis,
        clock: Callable[[], float] = time.time,
        namespace: str = "sentinel",
    ):
        self.client = client
        self.namespace = namespace
        self.clock = clock  # seconds since the epoch; injectable for tests
        self._purge = client.register_script(_PURGE)

    def _keys(self, kind: str) -> tuple[str, str]:
        if kind not in KINDS:
            raise ValueError(f"blocklist kind must be one of {KINDS}, not {kind!r}")
        return (redis_keys.blocklist(kind, self.namespace),
                redis_keys.blocklist_meta(kind, self.namespace))

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def add(self, kind: str, value: str, ttl_s: float | None, reason: str) -> Entry:
        """Add or refresh an entry; ``ttl_s=None`` blocks until removed."""
        value = normalise(kind, value)
        now = self._now_ms()
        expires = None if ttl_s is None else now + int(ttl_s * 1000)
        entry = Entry(kind, value, reason, now, expires)
        meta = json.dumps({"reason": reason, "added_at_ms": now, "expires_at_ms": expires})
        key, meta_key = self._keys(kind)
        pipe = self.client.pipeline(transaction=True)
        pipe.zadd(key, {value: FOREVER if expires is None else expires})
        pipe.hset(meta_key, value, meta)
        pipe.execute()
        self.purge(kind)
        return entry

    def remove(self, kind: str, value: str) -> bool:
        value = normalise(kind, value)
        key, meta_key = self._keys(kind)
        pipe = self.client.pipeline(transaction=True)
        pipe.zrem(key, value)
        pipe.hdel(meta_key, value)
        removed, _ = pipe.execute()
        return bool(removed)

    def contains_many(self, kind: str, values: Iterable[str]) -> set[str]:
        """The given values that are blocked now (in the form given), in one round trip."""
        given = list(dict.fromkeys(values))
        if not given:
            return set()
        forms = [_lookup_form(kind, v) for v in given]
        # redis-py annotates replies as ``Awaitable | Any`` (sync and async share the methods)
        reply = self.client.zmscore(self._keys(kind)[0], forms)
        scores = cast("builtins.list[float | None]", reply)
        now = self._now_ms()
        return {v for v, s in zip(given, scores, strict=True) if s is not None and s > now}

    def lookup(self, queries: dict[str, Iterable[str]]) -> dict[str, set[str]]:
        """``contains_many`` for several kinds at once, in ONE round trip (a pipeline)."""
        asked = {kind: list(dict.fromkeys(values)) for kind, values in queries.items()}
        pipe = self.client.pipeline(transaction=False)
        for kind, given in asked.items():
            pipe.zmscore(self._keys(kind)[0], [_lookup_form(kind, v) for v in given or [""]])
        now = self._now_ms()
        return {
            kind: {v for v, s in zip(given, scores, strict=False) if s is not None and s > now}
            for (kind, given), scores in zip(asked.items(), pipe.execute(), strict=True)
        }

    def snapshot(self) -> dict[str, dict[str, float]]:
        """Every live entry of every kind: kind → {value: expiry ms}, in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for kind in KINDS:
            # redis-py annotates start/end as int; with byscore they are score bounds
            pipe.zrange(self._keys(kind)[0], f"({self._now_ms()}", "+inf",  # type: ignore[arg-type]
                        byscore=True, withscores=True)
        return {kind: {m.decode(): score for m, score in rows}
                for kind, rows in zip(KINDS, pipe.execute(), strict=True)}

    def contains(self, kind: str, value: str) -> bool:
        return bool(self.contains_many(kind, [value]))

    def list(self, kind: str) -> builtins.list[Entry]:
        """Entries in force now, soonest expiry first (permanent ones last)."""
        key, meta_key = self._keys(kind)
        # redis-py annotates start/end as int (byscore: score bounds) and replies as
        # ``Awaitable | Any``
        members = cast("builtins.list[bytes]", self.client.zrange(
            key, f"({self._now_ms()}", "+inf", byscore=True))  # type: ignore[arg-type]
        if not members:
            return []
        metas = cast("builtins.list[bytes | None]", self.client.hmget(meta_key, members))
        return [self._entry(kind, m, meta) for m, meta in zip(members, metas, strict=True)]

    def purge(self, kind: str) -> int:
        """Drop expired entries and their reasons; returns how many went."""
        return int(self._purge(keys=list(self._keys(kind)), args=[self._now_ms()]))

    @staticmethod
    def _entry(kind: str, member: bytes, meta: bytes | None) -> Entry:
        data = json.loads(meta) if meta else {}
        return Entry(
            kind,
            member.decode(),
            data.get("reason", ""),
            data.get("added_at_ms", 0),
            data.get("expires_at_ms"),
        )
