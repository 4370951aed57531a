"""``sentinel demo`` (what ``make run`` ends with): start a worker, publish a burst of simulated
traffic through the real broker, and print the decisions that come back."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from confluent_kafka import Producer

from infra import admin, topics
from infra.observe import ports_off
from infra.process import stop_group
from infra.settings import Settings
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from streams.ops import format_decision, tail_decisions


def publish_burst(settings: Settings, purchases: int, seed: int) -> set[str]:
    """Simulated purchases, logins and chain transfers of one day, ending now."""
    from connectors.publisher import Publisher
    from models.simulator import SimConfig, simulate

    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    config = SimConfig(seed=seed, days=1, n_users=max(500, purchases * 14), n_shows=20,
                       start=start, fraud_rate=0.05)
    transfer_codec = AvroCodec.for_topic(registry_from_settings(settings), topics.CHAIN_TRANSFERS)
    chain = Producer(settings.kafka.producer_conf())
    sent: set[str] = set()
    with Publisher(settings) as publisher:
        for kind, record in simulate(config):
            if kind == "purchase":
                publisher.publish_purchase(record)
                sent.add(record["purchase_id"])
                if len(sent) >= purchases:
                    break
            elif kind == "auth":
                publisher.publish_auth_event(record)
            elif kind == "transfer":
                name = topics.full_name(topics.CHAIN_TRANSFERS, settings.kafka.topic_prefix)
                chain.produce(name, transfer_codec.encode(record), record["to_address"])
    chain.flush(30)
    return sent


def start_worker(log_path, argv: tuple[str, ...] = ("-m", "streams")) -> subprocess.Popen:
    log = open(log_path, "ab")  # noqa: SIM115 (owned by the process)
    env = {**os.environ, **ports_off()}  # the demo's processes leave the services' ports alone
    return subprocess.Popen([sys.executable, *argv], stdout=log, stderr=log, env=env,
                            start_new_session=True)


def stop_worker(proc: subprocess.Popen, grace: float = 15.0) -> None:
    stop_group(proc, grace)


def run_demo(settings: Settings, purchases: int = 300, timeout: float = 120.0) -> int:
    admin.create_topics(settings)
    log_path = settings.stream.data_dir / "demo-worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    worker = start_worker(log_path)
    sinks = start_worker(log_path.with_name("demo-sinks.log"), ("-m", "infra.cli", "sink", "all"))
    try:
        wait_ready(settings, timeout)
        seed = secrets.randbelow(1_000_000)
        started = time.monotonic()
        sent = publish_burst(settings, purchases, seed)
        print(f"published {len(sent)} simulated purchases (seed {seed}) in "
              f"{time.monotonic() - started:.1f} s; waiting for decisions…")
        got = collect(settings, sent, worker, timeout)
        stored = wait_stored(settings, set(got), timeout)
    finally:
        stop_worker(worker)
        stop_worker(sinks)
    report(got, len(sent))
    report_stores(settings, stored, got)
    return 0 if len(got) == len(sent) and stored == len(got) else 1


def wait_stored(settings: Settings, ids: set[str], timeout: float) -> int:
    """Until the sinks have written every decision to PostgreSQL; returns how many are."""
    import psycopg

    deadline = time.monotonic() + timeout
    with psycopg.connect(settings.postgres.dsn, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT count(*) FROM decisions WHERE purchase_id = ANY(%s)",
                               (list(ids),)).fetchone()
            stored = int(row[0]) if row else 0
            if stored >= len(ids) or time.monotonic() > deadline:
                return stored
            time.sleep(0.5)


def report_stores(settings: Settings, stored: int, got: dict[str, dict]) -> None:
    import psycopg
    import redis

    print(f"\nPostgreSQL: {stored} of {len(got)} decisions stored (table decisions); kpi_hourly:")
    with psycopg.connect(settings.postgres.dsn) as conn:
        rows = conn.execute("SELECT hour, decisions, approved, require_2fa, manual_review, "
                            "blocked, round(latency_p99_ms) FROM kpi_hourly "
                            "ORDER BY hour DESC LIMIT 3").fetchall()
    for row in rows:
        print(f"  {row[0]:%Y-%m-%d %H:00}  decisions={row[1]} approved={row[2]} 2fa={row[3]} "
              f"review={row[4]} blocked={row[5]} p99={row[6]} ms")
    sample = next(iter(got), None)
    if sample:
        cached = redis.Redis.from_url(settings.redis.dsn).get(f"sentinel:decision:{sample}")
        print(f"Redis: sentinel:decision:{sample} -> "
              f"{'present' if cached else 'missing'} (what GET /v1/decisions/{{id}} serves)")


def wait_ready(settings: Settings, timeout: float) -> None:
    """Until the worker's consumer group is stable (it has joined and owns the partitions)."""
    client = admin.admin_client(settings)
    group = settings.stream.app_id
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = client.describe_consumer_groups([group])[group].result(timeout=10)
        if described.state.name == "STABLE" and described.members:
            return
        time.sleep(0.5)
    raise TimeoutError(f"worker group {group} not ready in {timeout:.0f} s")


def collect(settings: Settings, wanted: set[str], worker, timeout: float) -> dict[str, dict]:
    got: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    for decision in tail_decisions(settings, from_beginning=True, idle_s=timeout):
        if decision.get("purchase_id") in wanted:
            got[decision["purchase_id"]] = decision
        if len(got) == len(wanted) or time.monotonic() > deadline:
            break
        if worker.poll() is not None:
            print(f"worker exited with {worker.returncode}; see .data/demo-worker.log")
            break
    return got


def report(got: dict[str, dict], sent: int) -> None:
    decisions = list(got.values())
    print(f"\n{len(decisions)} of {sent} decisions came back through the broker\n")
    flagged = [d for d in decisions if d["decision"] != "APPROVED"]
    for d in (flagged[:12] + [d for d in decisions if d["decision"] == "APPROVED"])[:20]:
        print("  " + format_decision(d))
    counts = Counter(d["decision"] for d in decisions)
    print("\nverdicts: " + ", ".join(f"{k} {v}" for k, v in counts.most_common()))
    latencies = sorted(d["latency_ms"] for d in decisions)
    if latencies:
        p50 = latencies[len(latencies) // 2]
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(f"latency from acceptance to decision: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
              "(one burst with a day of logins and transfers: mostly queueing; see "
              "`sentinel bench pipeline` for latency at a fixed rate)")
