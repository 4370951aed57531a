"""The maintenance service: ``sentinel db maintain --every 1h`` applies the retention policy
(``infra.retention``) on a schedule until SIGTERM/SIGINT, with its metrics and ``/healthz`` on
``METRICS_MAINTENANCE_PORT``. Without ``--every`` it runs once and exits 1 on a failure.

A failed run is logged, counted (``sentinel_maintenance_runs_total{outcome="failed"}``,
``sentinel_maintenance_table_failures_total{table}``) and flagged
(``sentinel_maintenance_failing`` = 1, an alert); the service keeps its schedule, since the
next run may succeed (a lock held too long, the database restarting).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import date

import psycopg
from prometheus_client import Counter, Gauge

from infra import db, observe, retention
from infra.settings import Settings

log = logging.getLogger(__name__)

RUNS = Counter("sentinel_maintenance_runs", "Maintenance runs by outcome", ["outcome"])
FAILING = Gauge("sentinel_maintenance_failing", "1 if the last maintenance run failed, else 0")
LAST_SUCCESS = Gauge(
    "sentinel_maintenance_last_success_timestamp_seconds", "Unix time of the last run that succeeded"
)
DURATION = Gauge("sentinel_maintenance_duration_seconds", "Duration of the last maintenance run")
TABLE_FAILURES = Counter(
    "sentinel_maintenance_table_failures", "Tables whose maintenance failed", ["table"]
)
CREATED = Counter("sentinel_partitions_created", "Day partitions created", ["table"])
DROPPED = Counter("sentinel_partitions_dropped", "Day partitions dropped (past retention)", ["table"])
MOVED = Counter("sentinel_default_partition_rows_moved", "Rows moved out of a default partition",
                ["table"])  # fmt: skip
DELETED = Counter("sentinel_retention_rows_deleted", "Rows deleted past retention", ["table"])


def run_once(dsn: str, as_of: date | None = None, ahead: int = retention.AHEAD_DAYS):
    """One run under the migrators' advisory lock (never beside a migration or another
    maintainer); raises ``retention.MaintenanceError`` or ``psycopg.Error`` on failure."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (db.LOCK_ID,))
        try:
            return retention.maintain(conn, as_of, ahead)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (db.LOCK_ID,))


def run_observed(dsn: str, as_of: date | None = None, ahead: int = retention.AHEAD_DAYS) -> bool:
    """``run_once`` with its outcome logged and in the metrics; True if it succeeded."""
    started = time.monotonic()
    report: retention.Report | None = None
    error: Exception | None = None
    try:
        report = run_once(dsn, as_of, ahead)
    except retention.MaintenanceError as exc:
        report, error = exc.report, exc
    except psycopg.Error as exc:
        error = exc
    DURATION.set(time.monotonic() - started)
    if report is not None:
        _count(report)
    if error is not None:
        RUNS.labels("failed").inc()
        FAILING.set(1)
        log.error("maintenance failed: %s", error)
        return False
    RUNS.labels("ok").inc()
    FAILING.set(0)
    LAST_SUCCESS.set(time.time())
    log.info("maintenance done %s", report.summary() if report else "")
    return True


def _count(report: retention.Report) -> None:
    for counter, values in (
        (CREATED, report.partitions_created),
        (DROPPED, report.partitions_dropped),
        (MOVED, report.rows_moved),
        (DELETED, report.rows_deleted),
    ):
        for table, n in values.items():
            counter.labels(table).inc(n)
    for table in report.failures:
        TABLE_FAILURES.labels(table).inc()


def run_every(
    settings: Settings,
    interval_s: float,
    ahead: int = retention.AHEAD_DAYS,
    stop: threading.Event | None = None,
) -> int:
    """Run now, then every ``interval_s``, until ``stop`` is set (SIGTERM/SIGINT when called
    from the main thread). Returns 0: failures are reported by log and metrics, not by dying."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, _frame: stop.set())
    conf = settings.metrics
    last: dict[str, object] = {"ok": None, "at": None}

    def health() -> tuple[bool, dict]:  # alive while it answers; the last run said as data
        return True, {"last_run_ok": last["ok"], "last_run_at": last["at"]}

    server = observe.serve(conf.bind, conf.maintenance_port, "METRICS_MAINTENANCE_PORT",
                           {"/healthz": health, "/readyz": health})  # fmt: skip
    try:
        while not stop.is_set():
            last["ok"] = run_observed(settings.postgres.dsn, None, ahead)
            last["at"] = time.time()
            stop.wait(interval_s)
    finally:
        if server is not None:
            server.close()
    log.info("maintenance stopped")
    return 0
