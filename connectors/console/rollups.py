"""Keeping the console's rollups current (infra/migrations/0012).

``refresh`` recomputes the minutes the triggers marked dirty; ``refresh_drift`` samples an
hour's decisions and stores PSI per feature against the model's training distribution;
``run_refresher`` does both on a schedule inside the console process. Several console
processes cooperate (the marks are taken with SKIP LOCKED).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg

from models.drift import DriftMonitor
from processors.policy import DEFAULT_THRESHOLDS

log = logging.getLogger(__name__)
DRIFT_SAMPLE = 2000
DRIFT_EVERY_S = 300.0


async def refresh(conn: psycopg.AsyncConnection, max_minutes: int = 5000) -> int:
    """Recompute dirty minutes (decisions, purchases, labels); returns how many."""
    review = DEFAULT_THRESHOLDS.review
    done = 0
    for function in ("console_refresh_decision_minutes", "console_refresh_label_minutes"):
        async with conn.transaction():
            cur = await conn.execute(f"SELECT {function}(%s, %s)", (max_minutes, review))
            row = await cur.fetchone()
        done += int(row[0]) if row else 0
    return done


async def refresh_until_clean(conn: psycopg.AsyncConnection, max_minutes: int = 5000) -> int:
    total = 0
    while (done := await refresh(conn, max_minutes)) > 0:
        total += done
    return total


def _hour(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


async def refresh_drift(
    conn: psycopg.AsyncConnection, hour: datetime, version: str, metadata: dict
) -> int:
    """PSI per feature of up to 2 000 of the hour's decisions by model ``version``."""
    start = _hour(hour)
    cur = await conn.execute(
        "SELECT features FROM decisions WHERE occurred_at >= %s AND occurred_at < %s"
        " AND model_version = %s ORDER BY occurred_at DESC LIMIT %s",
        (start, start + timedelta(hours=1), version, DRIFT_SAMPLE),
    )
    rows = [r[0] for r in await cur.fetchall()]
    names = list(metadata["feature_names"])
    if not rows:
        return 0
    matrix = np.array([[float(f.get(n, np.nan)) for n in names] for f in rows])
    monitor = DriftMonitor(metadata["distributions"], names, window=len(rows))
    monitor.observe(matrix)
    report = monitor.report()
    async with conn.transaction():
        await conn.execute(
            "DELETE FROM console_drift_hour WHERE hour = %s AND model_version = %s",
            (start, version),
        )
        async with conn.cursor() as c:
            await c.executemany(
                "INSERT INTO console_drift_hour (hour, model_version, feature, psi, n)"
                " VALUES (%s, %s, %s, %s, %s)",
                [(start, version, name, v["psi"], len(rows)) for name, v in report.items()],
            )
    return len(report)


def champion_metadata() -> tuple[str, dict] | None:
    """(version, metadata) of the registry's champion, or None without one."""
    from models.registry import ModelRegistry, UnknownModelError

    registry = ModelRegistry()
    try:
        version = registry.resolve(None, "champion")
        return version, registry.metadata(version)
    except (UnknownModelError, OSError, ValueError) as exc:
        log.warning("no champion model for drift: %s", exc)
        return None


async def run_refresher(pool, every_s: float) -> None:
    """Forever: refresh dirty minutes every ``every_s``, drift of this and the previous hour
    every five minutes. Errors are logged and retried on the next round."""
    last_drift = 0.0
    while True:
        try:
            async with pool.connection() as conn:
                await refresh(conn)
                if time.monotonic() - last_drift >= DRIFT_EVERY_S:
                    await _drift_round(conn)
                    last_drift = time.monotonic()
        except (psycopg.Error, TimeoutError) as exc:
            if asyncio.current_task().cancelling():  # stopping: psycopg turned the
                raise asyncio.CancelledError from exc  # cancellation into a query error
            log.warning("rollup refresh failed: %r", exc)
        await asyncio.sleep(every_s)


async def _drift_round(conn: psycopg.AsyncConnection) -> None:
    champion = await asyncio.to_thread(champion_metadata)
    if champion is None:
        return
    now = datetime.now(UTC)
    for hour in (now - timedelta(hours=1), now):
        await refresh_drift(conn, hour, *champion)
