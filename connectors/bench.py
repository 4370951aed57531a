"""``sentinel bench gateway``: the webhook gateway under load, on loopback, as a JSON report.

Starts the embedded stack if it is not running, creates a topic set of its own, runs the
gateway (uvicorn, 127.0.0.1, ephemeral port) in a subprocess with the rate limits raised far
out of the way but still evaluated (signature, validation, limiter and idempotency stay in the
path), then drives signed purchases, each with a new purchase_id, from a keep-alive HTTP/1.1
load client written on asyncio streams (cheap enough not to be the bottleneck):

1. full speed: ``concurrency`` connections in a closed loop for ``duration_s``
   → ``accepted_per_s`` (202s per second);
2. fixed rate: ``rate`` requests/s, open loop (latency counted from each request's scheduled
   time, so a stall is not hidden) → ``latency_ms`` p50/p90/p99/max.

Finally it checks that the purchases topic holds every acknowledged record, then stops what it
started and deletes its topics.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any

from connectors.bench_load import Load, percentiles, run_fixed_rate, run_full_speed, wait_healthy
from connectors.bench_server import GatewayProcess, topic_records
from infra import admin, local, redis_keys
from infra.observe import free_port
from infra.scratch import scratch_run
from infra.secrets import webhook_secrets
from infra.settings import KafkaSettings, Settings, WebhookSettings
from infra.topics import AUTH_EVENTS, LABELS, PURCHASES, SECURITY_EVENTS

BENCH_TOPICS = (PURCHASES, AUTH_EVENTS, LABELS, SECURITY_EVENTS)
UNLIMITED = 1_000_000_000


def bench_settings(settings: Settings, token: str) -> Settings:
    prefix = f"{token}."
    kafka = KafkaSettings(**{**settings.kafka.model_dump(), "topic_prefix": prefix})
    webhook = WebhookSettings(**{
        **settings.webhook.model_dump(),
        "rate_per_ip_per_min": UNLIMITED, "rate_per_wallet_per_min": UNLIMITED,
        "rate_global_per_min": UNLIMITED,
    })  # fmt: skip
    return settings.model_copy(update={"kafka": kafka, "webhook": webhook})


def run_gateway_bench(
    settings: Settings,
    *,
    duration_s: float = 10.0,
    rate: int = 500,
    concurrency: int = 64,
    workers: int = 1,
) -> dict[str, Any]:
    wanted = local.needs_embedded(settings)
    running = {n for n, s in local.status(settings, wanted).items() if s["state"] == "running"}
    local.start_all(settings, wanted)
    try:
        with scratch_run(settings, "bench-") as token:
            report = _run(bench_settings(settings, token), duration_s, rate, concurrency, workers)
    finally:
        if wanted - running:
            local.stop_all(settings, wanted - running)
    return report


def _run(settings: Settings, duration_s: float, rate: int, concurrency: int,
         workers: int) -> dict[str, Any]:
    admin.create_topics(settings, BENCH_TOPICS)
    port = free_port()
    server = GatewayProcess(settings, port, workers)
    try:
        report = asyncio.run(_drive(settings, port, duration_s, rate, concurrency, server))
        report["gateway"] = {"workers": workers, "http": server.http_impl(), "port": port}
    finally:
        server.stop()
        _delete_redis_keys(settings)
    return report


async def _drive(
    settings: Settings, port: int, duration_s: float, rate: int, concurrency: int, server
) -> dict[str, Any]:
    secret = webhook_secrets(settings)[0]
    await wait_healthy(port, server.assert_alive)
    load = Load("127.0.0.1", port, secret, run_id=uuid.uuid4().hex[:8])
    await run_full_speed(load, concurrency, min(2.0, duration_s))  # warm-up
    load_before, cpu_before = os.getloadavg()[0], server.cpu_seconds()
    full = await run_full_speed(load, concurrency, duration_s)
    cpu_full = server.cpu_seconds() - cpu_before
    fixed = await run_fixed_rate(load, rate, duration_s, connections=concurrency)
    on_topic = await asyncio.to_thread(topic_records, settings, PURCHASES)
    return {
        "accepted_per_s": round(full.statuses[202] / full.elapsed_s, 1),
        "at_rate": rate,
        "latency_ms": percentiles(fixed.latencies_ms),
        "full_speed": full.summary()
        | {
            "concurrency": concurrency,
            "gateway_cpu_ms_per_request": round(1000 * cpu_full / max(1, full.sent), 3),
        },
        "fixed_rate": fixed.summary() | {"achieved_rate": round(fixed.sent / fixed.elapsed_s, 1)},
        "acknowledged_total": load.accepted,
        "records_on_topic": on_topic,
        "all_acknowledged_on_topic": on_topic >= load.accepted,
        "client": "asyncio streams, HTTP/1.1 keep-alive, one process",
        "cpus": os.cpu_count(),
        "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
        "finished_at": time.time(),
    }


def _delete_redis_keys(settings: Settings) -> None:
    """The run's idempotency keys and windows (``sentinel:<prefix>…``)."""
    import redis

    client = redis.Redis.from_url(settings.redis.dsn)
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(redis_keys.namespace(settings.kafka.topic_prefix) + "*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                client.unlink(*batch)
                batch = []
        if batch:
            client.unlink(*batch)
    finally:
        client.close()
