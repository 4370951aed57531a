"""``sentinel bench console --out FILE.json``: each console API endpoint's latency with a
million decisions in PostgreSQL, and the dashboard's first paint in headless Chromium.

A bench database of its own is created on the configured server, migrated, filled through the
PostgreSQL sink (bench_data.py), its rollups brought up to date and analysed; a real console
process (uvicorn) serves it; each endpoint is called ``requests`` times in a row over one
keep-alive connection with an API key. ``/healthz`` (no database work) is measured the same
way as the floor of the HTTP path in this run (each endpoint's p95 is also given as a ratio to
it), ``SELECT 1`` as the database's; the report also holds the machine's load before and after,
the core count and the target (p95 < 100 ms; first paint < 1 s).

``--keep`` leaves the database (its name is in the report); ``--reuse-db NAME`` measures it
again without preparing anything (migrations, rollups and statistics are brought up to date;
its rows keep the age they had).
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

from connectors.console import bench_data
from infra import db
from infra.process import stop_group
from infra.settings import Settings

TARGET_P95_MS = 100.0
FLOOR = "healthz (floor)"
TARGET_PAINT_MS = 1000.0
PAINTS = 5


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def _database(settings: Settings) -> tuple[str, str]:
    name = f"sentinel_bench_console_{int(time.time())}"
    with psycopg.connect(settings.postgres.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, settings.postgres.dsn.rsplit("/", 1)[0] + f"/{name}"


def _prepare(dsn: str, decisions: int, days: int) -> dict:
    """Migrate, load, then what a reused database also gets (``_settle``)."""
    timings: dict = {}
    started = time.monotonic()
    db.migrate(dsn)
    timings["migrate_s"] = round(time.monotonic() - started, 1)
    started = time.monotonic()
    timings["rows"] = bench_data.load(dsn, decisions, days)
    timings["load_s"] = round(time.monotonic() - started, 1)
    return timings | _settle(dsn)


def _settle(dsn: str) -> dict:
    """Refresh the rollups, let analysts have worked the cases older than a day, ANALYZE."""
    from connectors.console.rollups import refresh_until_clean

    async def refresh() -> int:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            return await refresh_until_clean(conn)

    timings: dict = {}
    started = time.monotonic()
    timings["minutes_rolled_up"] = asyncio.run(refresh())
    timings["rollups_s"] = round(time.monotonic() - started, 1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE review_cases SET state = 'closed', outcome = 'legit', claimed_by = 'bench',"
            " claimed_at = opened_at, closed_by = 'bench', closed_at = opened_at + interval '1 hour'"
            " WHERE opened_at < now() - interval '1 day' AND state <> 'closed'"
        )
        started = time.monotonic()
        conn.execute("ANALYZE")
        timings["analyze_s"] = round(time.monotonic() - started, 1)
        timings["open_cases"] = conn.execute(
            "SELECT count(*) FROM review_cases WHERE state <> 'closed'").fetchone()[0]  # fmt: skip
    return timings


def _reuse(settings: Settings, name: str) -> tuple[dict, str]:
    """A database an earlier run kept (``--keep``): migrated to this code's schema, its rollups
    and statistics brought up to date. Its rows are as old as that run: the report says how
    old (the 24 h windows hold fewer decisions the older they are)."""
    dsn = settings.postgres.dsn.rsplit("/", 1)[0] + f"/{name}"
    started = time.monotonic()
    applied = db.migrate(dsn)
    info: dict = {"database": name, "migrations_applied": applied,
                  "migrate_s": round(time.monotonic() - started, 1)}  # fmt: skip
    with psycopg.connect(dsn) as conn:
        count, first, last = conn.execute(
            "SELECT count(*), min(occurred_at), max(occurred_at) FROM decisions").fetchone()  # fmt: skip
    info |= {"decisions": count, "data_from": first, "data_until": last,
             "data_age_h": round((datetime.now(UTC) - last).total_seconds() / 3600, 1)}  # fmt: skip
    return info | _settle(dsn), dsn


def _user(dsn: str) -> tuple[str, str, str]:
    from connectors.console import accounts

    name = f"bench-{int(time.time())}"  # a reused database keeps the users of earlier runs

    async def make() -> tuple[str, str, str]:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            password = await accounts.add_user(conn, name, "analyst", None, "bench")
            return name, password, await accounts.create_key(conn, name, "bench")

    return asyncio.run(make())


def _endpoints(decisions: int) -> dict[str, list[str]]:
    rng = random.Random(3)
    ids = [f"dec_bench-{rng.randrange(decisions):08d}" for _ in range(50)]
    wallets = [f"0x{rng.randrange(max(1000, decisions // 5)):040x}" for _ in range(50)]
    return {
        FLOOR: ["/healthz"],
        "kpis": ["/v1/kpis"],
        "fraud": ["/v1/fraud"],
        "model": ["/v1/model"],
        "cases": ["/v1/cases"],
        "alerts": ["/v1/alerts?severity=HIGH"],
        "traffic": ["/v1/traffic"],
        "system": ["/v1/system"],
        "decision_by_id": [f"/v1/decisions/{d}" for d in ids],
        "decisions_by_wallet": [f"/v1/wallets/{w}/decisions" for w in wallets],
        "wallet_history_and_links": [f"/v1/wallets/{w}" for w in wallets],
    }


def _select_1(dsn: str, requests: int) -> dict:
    """The database's own floor in this run: ``SELECT 1`` round trips on one connection."""
    times = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for _ in range(requests):
            started = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": _quantile(times, 0.5), "p95_ms": _quantile(times, 0.95)}


def _measure(base: str, key: str, requests: int, decisions: int) -> dict[str, dict]:
    out = {}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        for name, paths in _endpoints(decisions).items():
            for path in paths[:3]:  # warm: connection, pool, plan caches, first sample
                client.get(path)
            times, statuses = [], set()
            for i in range(requests):
                started = time.perf_counter()
                response = client.get(paths[i % len(paths)])
                times.append((time.perf_counter() - started) * 1000)
                statuses.add(response.status_code)
            out[name] = {"p50_ms": _quantile(times, 0.5), "p95_ms": _quantile(times, 0.95),
                         "p99_ms": _quantile(times, 0.99), "max_ms": round(max(times), 2),
                         "requests": requests, "statuses": sorted(statuses)}  # fmt: skip
    return out


# The first contentful paint (it may be recorded just after "load"), and the load event.
_PAINT_JS = """() => new Promise(resolve => new PerformanceObserver((list, observer) => {
  const fcp = list.getEntries().find(e => e.name === 'first-contentful-paint');
  if (fcp) { observer.disconnect();
    resolve({fcp: fcp.startTime, load: performance.getEntriesByType('navigation')[0].loadEventEnd}); }
}).observe({type: 'paint', buffered: true}))"""


def _first_paint(base: str, name: str, password: str) -> dict:
    """First contentful paint and load of the KPI page, ``PAINTS`` fresh loads."""
    from connectors.console.browser import CHROMIUM, MISSING, launch, sign_in

    if not CHROMIUM.exists():
        return {"error": MISSING}
    from playwright.sync_api import sync_playwright

    paints, loads = [], []
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            sign_in(page, base, name, password)
            for _ in range(PAINTS):
                page.goto(f"{base}/", wait_until="load")
                timing = page.evaluate(_PAINT_JS)
                paints.append(timing["fcp"])
                loads.append(timing["load"])
        finally:
            browser.close()
    return {"first_contentful_paint_ms": [round(p, 1) for p in paints],
            "load_event_ms": [round(v, 1) for v in loads],
            "median_first_paint_ms": round(statistics.median(paints), 1)}  # fmt: skip


def _serve(settings: Settings, dsn: str, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "POSTGRES_URL": dsn, "SENTINEL_CONSOLE_PORT": str(port),
           "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
           "REDIS_URL": settings.redis.dsn}  # fmt: skip
    return subprocess.Popen([sys.executable, "-m", "infra.cli", "console", "--log-level", "warning"],
                            env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip


def _wait_up(base: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the console exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the console did not answer in {timeout:.0f} s")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _summary(endpoints: dict[str, dict]) -> dict:
    """Each endpoint's p95, against the target and against the floor of this run."""
    floor = endpoints[FLOOR]["p95_ms"]
    return {
        "endpoints": endpoints,
        "api_p95_ms": {k: v["p95_ms"] for k, v in endpoints.items()},
        "api_p95_ratio_to_target": {k: round(v["p95_ms"] / TARGET_P95_MS, 3) for k, v in endpoints.items()},
        "api_p95_ratio_to_floor": {k: round(v["p95_ms"] / floor, 2) for k, v in endpoints.items() if floor},
        "all_under_target": all(v["p95_ms"] < TARGET_P95_MS for k, v in endpoints.items() if k != FLOOR),
    }  # fmt: skip


def run_console_bench(
    settings: Settings, decisions: int, days: int, requests: int, keep: bool = False,
    reuse: str | None = None,
) -> dict:
    """Prepare a bench database (or ``reuse`` one kept by an earlier run: never dropped),
    serve it, measure."""
    report: dict = {"started_at": datetime.now(UTC).isoformat(), "decisions": decisions,
                    "days": days, "cpus": os.cpu_count(), "load_before": os.getloadavg(),
                    "target_p95_ms": TARGET_P95_MS, "target_first_paint_ms": TARGET_PAINT_MS}  # fmt: skip
    proc = None
    if reuse:
        name, keep = reuse, True
        report["reused"], dsn = _reuse(settings, reuse)
        report["decisions"] = report["reused"]["decisions"]
    else:
        name, dsn = _database(settings)
    report["database"] = name
    try:
        if not reuse:
            report["prepare"] = _prepare(dsn, decisions, days)
        user, password, key = _user(dsn)
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        proc = _serve(settings, dsn, port, Path(tempfile.gettempdir()) / f"{name}.log")
        _wait_up(base, proc)
        report |= _summary(_measure(base, key, requests, report["decisions"]))
        report["postgres_select_1"] = _select_1(dsn, requests)
        report["first_paint"] = _first_paint(base, user, password)
        report["first_paint_ms"] = report["first_paint"].get("median_first_paint_ms")
    finally:
        if proc is not None:
            stop_group(proc, 10.0)
        if not keep:
            with psycopg.connect(settings.postgres.dsn, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    report["load_after"] = os.getloadavg()
    return report
