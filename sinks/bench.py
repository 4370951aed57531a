"""``sentinel bench sinks``: what the sinks sustain on this machine, as a JSON report.

- ``postgres_copy``: decisions through ``PostgresSink.write`` (COPY to staging + INSERT ...
  ON CONFLICT) in batches of 500, fresh rows and the same rows redelivered;
- ``redis_pipeline``: decisions through ``RedisSink.write`` (one EVALSHA per decision, one
  pipeline per batch of 500), and ``Blocklist.contains_many`` lookups of 500 values;
- ``sink_loop_postgres``: the whole loop, Kafka -> decode -> COPY -> commit.

Everything runs in a throwaway database, topic prefix and key space, removed afterwards.
"""

from __future__ import annotations

import platform
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import cast

import psycopg
import redis
from confluent_kafka import Producer

from infra import admin, db, redis_keys, topics
from infra.scratch import scratch_run
from infra.settings import KafkaSettings, Settings
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from sinks.blocklist import Blocklist
from sinks.config import SinkSettings
from sinks.postgres import PostgresSink
from sinks.redis import RedisSink, kpi_bucket
from sinks.runner import SinkLoop
from sinks.testing import decision, records, running, wait_until

BATCH = 500
BENCH_T0 = datetime(2031, 1, 1, tzinfo=UTC)


def _decisions(n: int, tag: str) -> list[dict]:
    return [
        decision(i, purchase_id=f"{tag}-{i}", occurred_at=BENCH_T0 + timedelta(seconds=i),
                 decided_at=BENCH_T0 + timedelta(seconds=i, milliseconds=5))
        for i in range(n)
    ]


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _batched(sink, batch: list) -> Callable[[], None]:
    def go() -> None:
        for i in range(0, len(batch), BATCH):
            sink.write(batch[i : i + BATCH])

    return go


def _rate(n: int, seconds: float) -> dict:
    return {"n": n, "seconds": round(seconds, 3), "per_s": round(n / seconds)}


def bench_postgres(dsn: str, values: list[dict]) -> dict:
    sink = PostgresSink(dsn, [topics.DECISIONS])
    sink.setup()
    batch = records(topics.DECISIONS, values)
    try:
        fresh = _timed(_batched(sink, batch))
        again = _timed(_batched(sink, batch))
    finally:
        sink.close()
    return {"fresh_rows": _rate(len(batch), fresh), "redelivered_rows": _rate(len(batch), again)}


def bench_redis(url: str, values: list[dict], tag: str) -> dict:
    sink = RedisSink.from_url(url)
    sink.setup()
    client = redis.Redis.from_url(url)
    batch = records(topics.DECISIONS, values)
    bl = Blocklist(client, namespace=f"bench{tag}")
    for i in range(100):
        bl.add("ip", f"10.9.{i // 256}.{i % 256}", 3600, "bench")
    lookups = [f"10.9.{i // 256}.{i % 256}" for i in range(BATCH)]
    rounds = max(1, len(values) // BATCH)
    try:
        seconds = _timed(_batched(sink, batch))
        look = _timed(lambda: [bl.contains_many("ip", lookups) for _ in range(rounds)])
    finally:
        keys: list[str | bytes] = [redis_keys.decision(v['purchase_id']) for v in values]
        keys += list({kpi_bucket(v["occurred_at"]) for v in values})
        # redis-py annotates replies as ``Awaitable | Any``; KEYS gives the names as bytes
        keys += cast("list[bytes]", client.keys(f"bench{tag}:*"))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])
        sink.close()
        client.close()
    return {
        "decisions": _rate(len(batch), seconds),
        "blocklist_lookups": _rate(rounds * BATCH, look),
    }


def bench_loop(settings: Settings, dsn: str, values: list[dict]) -> dict:
    with scratch_run(settings, "bench") as token:
        prefix = f"{token}."
        kafka = KafkaSettings(**{**settings.kafka.model_dump(), "topic_prefix": prefix})
        local = settings.model_copy(update={"kafka": kafka})
        admin.create_topics(local, (topics.DECISIONS, topics.dlq(topics.DECISIONS)))
        codec = AvroCodec.for_topic(registry_from_settings(local), topics.DECISIONS)
        producer = Producer(local.kafka.producer_conf())
        name = topics.full_name(topics.DECISIONS, prefix)
        for v in values:
            producer.produce(name, codec.encode(v), v["wallet"])
            producer.poll(0)
        producer.flush(60)
        loop = SinkLoop(local, PostgresSink(dsn, [topics.DECISIONS]), SinkSettings())
        with running(loop):
            wait_until(lambda: loop.stats.batches > 0, 60, "first batch")
            start, first = time.perf_counter(), loop.stats.written
            wait_until(lambda: loop.stats.written >= len(values), 300, "all rows")
            seconds = time.perf_counter() - start
        return _rate(len(values) - first, seconds)


def run_bench(settings: Settings, rows: int = 50_000) -> dict:
    tag = uuid.uuid4().hex[:8]
    base = settings.postgres.dsn
    name = f"bench_{tag}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = base.rsplit("/", 1)[0] + f"/{name}"
    try:
        db.migrate(dsn)
        report = {
            "machine": {"python": platform.python_version(), "cpus": _cpus()},
            "batch": BATCH,
            "postgres_copy": bench_postgres(dsn, _decisions(rows, f"pg{tag}")),
            "redis_pipeline": bench_redis(settings.redis.dsn, _decisions(rows, f"rd{tag}"), tag),
        }
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("TRUNCATE decisions")
        report["sink_loop_postgres"] = bench_loop(settings, dsn, _decisions(rows, f"lp{tag}"))
        return report
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _cpus() -> int:
    import os

    return os.cpu_count() or 0
