"""Redis sink: the latest decision per purchase and per-minute KPI buckets, one pipeline per
batch (no round trip per event).

For each decision one server-side script (``EVALSHA`` in the pipeline) does, atomically:

- newest-event-wins (feast ``online_stores/redis.py``): the JSON at
  ``sentinel:decision:{purchase_id}`` is replaced only when the new record's ``decided_at``
  is not older than the stored one's, so a redelivered older record never overwrites;
- a notification on ``sentinel:decision-stored`` (the purchase id) when the stored decision
  changed, so that long-polling readers wait on a subscription instead of polling;
- KPIs exactly once: ``sentinel:kpi:{yyyymmddHHMM}`` (minute of the event time) gets
  ``total``, the verdict, and ``latency_ms_sum`` incremented only when the purchase had no
  stored decision yet, so redelivery does not double count (while the 7-day key lives).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import cast

import redis
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    ClusterDownError,
    NoPermissionError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)

from infra import redis_keys, topics
from sinks.base import (
    BatchSink,
    Record,
    SinkBackpressureError,
    SinkError,
    SinkRecordError,
    SinkUnavailableError,
)
from sinks.config import SinkSettings
from sinks.encoding import epoch_ms, to_json

VERDICTS = ("APPROVED", "REQUIRE_2FA", "MANUAL_REVIEW", "BLOCKED")

# KEYS: decision key, kpi key. ARGV: json, decided_at ms, ttl ms, verdict, latency, kpi ttl ms,
# notification channel, purchase id.
_PUT_DECISION = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, old = pcall(cjson.decode, cur)
  if ok and type(old) == 'table' and tonumber(old['decided_at'])
     and tonumber(old['decided_at']) > tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('PUBLISH', ARGV[7], ARGV[8])
if not cur then
  redis.call('HINCRBY', KEYS[2], 'total', 1)
  redis.call('HINCRBY', KEYS[2], ARGV[4], 1)
  redis.call('HINCRBYFLOAT', KEYS[2], 'latency_ms_sum', ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ARGV[6])
end
return 1
"""


class RedisSinkError(SinkError):
    """Redis refused a command in a way retrying will not fix."""


class RedisUnavailableError(RedisSinkError, SinkUnavailableError):
    """Connection refused or lost, or Redis is loading: retry the batch."""


class RedisRecordError(RedisSinkError, SinkRecordError):
    """Redis refused a command for one record (e.g. WRONGTYPE on its key): dead-letter it."""


# Error codes by which the whole server refuses writes for a while, whatever the record:
# retry the batch after a back-off, never dead-letter it.
SERVER_WIDE_CODES = frozenset({
    "MISCONF",  # cannot persist (stop-writes-on-bgsave-error)
    "BUSY",  # a script or function is running past its time limit
    "LOADING",  # loading the dataset after a restart
    "READONLY",  # a replica (failover under way)
    "MASTERDOWN", "NOREPLICAS", "TRYAGAIN", "CLUSTERDOWN",
})  # fmt: skip


def error_code(exc: RedisError) -> str:
    """The Redis error code (``MISCONF``, ``BUSY``...) of a reply error, also when a pipeline
    annotated it ("Command # 1 (...) of pipeline caused error: MISCONF ...")."""
    message = str(exc)
    _, _, reply = message.partition("caused error: ")
    return (reply or message).split(" ", 1)[0]


def wrap_redis_error(exc: RedisError) -> SinkError:
    if isinstance(exc, AuthenticationError | NoPermissionError):
        return RedisSinkError(f"redis refused access: {exc}")
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError | BusyLoadingError):
        return RedisUnavailableError(f"redis unavailable: {exc}")
    if isinstance(exc, ReadOnlyError | TryAgainError | ClusterDownError):
        return RedisUnavailableError(f"redis cannot take writes now: {exc}")
    if isinstance(exc, OutOfMemoryError) or error_code(exc) == "OOM":
        return SinkBackpressureError(f"redis out of memory: {exc}", retry_after=1.0)
    if error_code(exc) in SERVER_WIDE_CODES:
        return RedisUnavailableError(f"redis cannot take writes now: {exc}")
    if isinstance(exc, ResponseError):
        return RedisRecordError(f"redis refused a command: {exc}")
    return RedisSinkError(f"redis: {exc!r}")


def kpi_bucket(at: datetime) -> str:
    """The per-minute KPI key of an (aware, UTC) time: ``sentinel:kpi:202611011205``."""
    return redis_keys.kpi(at.strftime("%Y%m%d%H%M"))


def decision_json(record: dict) -> str:
    """The Decision fields as JSON, timestamps as epoch milliseconds (what GET /v1/decisions
    returns)."""
    return to_json(record)


class RedisSink(BatchSink):
    name = "redis"
    topics = (topics.DECISIONS,)

    def __init__(self, client: redis.Redis, conf: SinkSettings | None = None):
        self.client = client
        conf = conf or SinkSettings()
        self.decision_ttl_ms = conf.decision_ttl_s * 1000
        self.kpi_ttl_ms = conf.kpi_ttl_s * 1000
        self._sha: str | None = None

    @classmethod
    def from_url(cls, url: str, conf: SinkSettings | None = None) -> RedisSink:
        return cls(redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5), conf)

    def setup(self) -> None:
        try:
            self.client.info("server")
            # SCRIPT LOAD's reply is decoded to str (redis-py annotates ``Awaitable | Any``)
            self._sha = cast(str, self.client.script_load(_PUT_DECISION))
        except RedisError as exc:
            raise wrap_redis_error(exc) from exc

    def close(self) -> None:
        self.client.close()

    def write(self, batch: Sequence[Record]) -> None:
        try:
            try:
                self._write(batch)
            except NoScriptError:  # Redis restarted or flushed its scripts: load, redo
                self._sha = None
                self._write(batch)
        except RedisError as exc:
            raise wrap_redis_error(exc) from exc

    def _write(self, batch: Sequence[Record]) -> None:
        if self._sha is None:
            # SCRIPT LOAD's reply is decoded to str (redis-py annotates ``Awaitable | Any``)
            self._sha = cast(str, self.client.script_load(_PUT_DECISION))
        pipe = self.client.pipeline(transaction=False)
        for record in batch:
            self._put(pipe, record.value)
        pipe.execute()

    def _put(self, pipe, d: dict) -> None:
        keys = [redis_keys.decision(d["purchase_id"]), kpi_bucket(d["occurred_at"])]
        args = [
            decision_json(d),
            epoch_ms(d["decided_at"]),
            self.decision_ttl_ms,
            d["decision"],
            repr(latency if math.isfinite(latency := float(d["latency_ms"])) else 0.0),
            self.kpi_ttl_ms,
            redis_keys.DECISION_STORED,
            d["purchase_id"],
        ]
        pipe.evalsha(self._sha, len(keys), *keys, *args)
