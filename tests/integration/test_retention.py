"""Retention holds on a real PostgreSQL: day partitions ahead, rows that fell into a default
partition moved into their day before that day's partition is created, everything past the
policy gone (partitioned tables, labels and alerts), every row within it kept, and a failure
reported instead of swallowed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, date, datetime, time, timedelta

import psycopg
import pytest
from prometheus_client import REGISTRY

from infra import db, maintenance, retention
from infra.observe import free_port
from infra.process import stop_group
from tests.support.http import wait_for

pytestmark = pytest.mark.integration

D = datetime.now(UTC).date()  # "day D": the day the schema is migrated on

# One row per (table, day): the SQL inserts a row with id %(id)s aged by %(at)s.
INSERTS = {
    "purchases": "INSERT INTO purchases (purchase_id, occurred_at, wallet, user_id, organizer_id,"
    " show_id, ticket_id, quantity, unit_price_minor, currency, channel, payment_method)"
    " VALUES (%(id)s, %(at)s, 'w', 'u', 'o', 's', 't', 1, 100, 'EUR', 'PRIMARY', 'CARD')",
    "chain_transfers": "INSERT INTO chain_transfers (chain_id, tx_hash, log_index, token_id,"
    " block_time, block_number, block_hash, contract, standard, amount, from_address,"
    " to_address, kind) VALUES (1, %(id)s, 0, 1, %(at)s, 1, 'h', 'c', 'ERC721', 1, 'a', 'b', 'MINT')",
    "auth_events": "INSERT INTO auth_events (event_id, occurred_at, kind, user_id)"
    " VALUES (%(id)s, %(at)s, 'LOGIN_OK', 'u')",
    "decisions": "INSERT INTO decisions (purchase_id, occurred_at, decision_id, wallet, decision,"
    " score, model_score, rule_score, model_version, rules_version, decided_at, latency_ms)"
    " VALUES (%(id)s, %(at)s, %(id)s, 'w', 'APPROVED', 0, 0, 0, 'm', 'r', %(at)s, 1)",
    "security_events": "INSERT INTO security_events (event_id, occurred_at, kind, severity, source)"
    " VALUES (%(id)s, %(at)s, 'k', 'LOW', 'test')",
    "labels": "INSERT INTO labels (purchase_id, source, occurred_at, is_fraud)"
    " VALUES (%(id)s, 'chargeback', %(at)s, true)",
    "alerts": "INSERT INTO alerts (alert_id, rule, group_key, severity, count, first_seen,"
    " last_seen, created_at) VALUES (%(id)s, 'r', 'g', 'LOW', 1, %(at)s, %(at)s, %(at)s)",
}
ID_COLUMN = {"purchases": "purchase_id", "chain_transfers": "tx_hash", "auth_events": "event_id",
             "decisions": "purchase_id", "security_events": "event_id", "labels": "purchase_id",
             "alerts": "alert_id"}  # fmt: skip


def _insert(conn: psycopg.Connection, table: str, day: date) -> None:
    at = datetime.combine(day, time(12), UTC)
    conn.execute(INSERTS[table], {"id": f"{table}-{day}", "at": at})


def _rows(conn: psycopg.Connection, policy: retention.Policy) -> dict[str, tuple[date, str]]:
    """id -> (day of the row, the relation holding it) over the whole table."""
    query = (
        f"SELECT {ID_COLUMN[policy.table]}, ({policy.time_column} AT TIME ZONE 'UTC')::date,"
        f" tableoid::regclass::text FROM {policy.table}"
    )
    return {row[0]: (row[1], row[2]) for row in conn.execute(query)}


def _partitions(conn: psycopg.Connection, table: str) -> set[str]:
    rows = conn.execute(
        "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = %s::regclass", (table,)
    )
    return {row[0] for row in rows}


def test_retention_holds_after_rows_fell_into_the_default_partitions(pg_dsn: str) -> None:
    as_of = D + timedelta(days=200)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        db.migrate(pg_dsn, today=D)
        policies = retention.policies(conn)
        assert {p.table for p in policies} == set(INSERTS)
        keep = {p.table: p.keep_days for p in policies}
        assert keep["labels"] >= 365 and keep["alerts"] >= 365
        # Before any maintenance past D: D+10 and D+200 have no partition yet.
        for p in policies:
            for day in (D, D + timedelta(days=10), as_of):
                _insert(conn, p.table, day)
        in_default = _rows(conn, next(p for p in policies if p.table == "purchases"))
        assert in_default[f"purchases-{D + timedelta(days=10)}"][1] == "purchases_default"
        assert in_default[f"purchases-{as_of}"][1] == "purchases_default"

        # Maintenance as of D+10 moves those rows into their day partitions (creating a
        # partition while the default holds rows of its day used to fail, silently).
        report = db.maintain(conn, D + timedelta(days=10))
        assert report.rows_moved["purchases"] == 2 and not report.failures
        after = _rows(conn, next(p for p in policies if p.table == "purchases"))
        assert after[f"purchases-{D + timedelta(days=10)}"][1] == (
            f"purchases_p{D + timedelta(days=10):%Y%m%d}"
        )

        # Rows at the edge of each policy as of D+200, landing in the default partitions.
        for p in policies:
            oldest = p.oldest_kept(as_of)
            for day in (oldest, oldest - timedelta(days=1)):
                _insert(conn, p.table, day)

        report = db.maintain(conn, as_of)

        for p in policies:
            oldest = p.oldest_kept(as_of)
            rows = _rows(conn, p)
            too_old = {i: day for i, (day, _) in rows.items() if day < oldest}
            assert not too_old, f"{p.table}: rows past retention remain: {too_old}"
            inserted = {D, D + timedelta(days=10), as_of, oldest, oldest - timedelta(days=1)}
            kept = {day for day, _ in rows.values()}
            assert kept == {day for day in inserted if day >= oldest}, p.table
            if p.partitioned:
                for day, relation in rows.values():
                    assert relation == f"{p.table}_p{day:%Y%m%d}", (p.table, day, relation)
                old = [n for n in _partitions(conn, p.table)
                       if n[-8:].isdigit() and date(int(n[-8:-4]), int(n[-4:-2]), int(n[-2:])) < oldest]  # fmt: skip
                assert not old, f"{p.table}: partitions past retention remain: {old}"
                ahead = retention.partition_name(p.table, as_of + timedelta(days=7))
                assert ahead in _partitions(conn, p.table)
        assert report.rows_deleted["purchases"] >= 1  # the D+109 row, from the default partition
        assert report.rows_deleted["labels"] == 1 and report.rows_deleted["alerts"] == 1


def test_a_failing_table_is_reported_and_the_others_still_maintained(pg_dsn: str) -> None:
    as_of = D + timedelta(days=30)
    blocker = retention.partition_name("purchases", as_of)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        # A stray table with the name of a partition to create: the purchases step must fail.
        conn.execute(f"CREATE TABLE {blocker} (x int)")
        with pytest.raises(retention.MaintenanceError) as failed:
            db.maintain(conn, as_of)
        assert set(failed.value.report.failures) == {"purchases"}
        assert blocker in failed.value.report.failures["purchases"]
        assert retention.partition_name("decisions", as_of) in _partitions(conn, "decisions")

    failed_before = REGISTRY.get_sample_value(
        "sentinel_maintenance_runs_total", {"outcome": "failed"}) or 0  # fmt: skip
    assert maintenance.run_observed(pg_dsn, as_of) is False
    assert REGISTRY.get_sample_value("sentinel_maintenance_failing") == 1
    assert REGISTRY.get_sample_value(
        "sentinel_maintenance_runs_total", {"outcome": "failed"}) == failed_before + 1  # fmt: skip
    assert REGISTRY.get_sample_value(
        "sentinel_maintenance_table_failures_total", {"table": "purchases"}) >= 1  # fmt: skip

    env = {**os.environ, "POSTGRES_URL": pg_dsn}
    argv = [sys.executable, "-m", "infra.cli", "db", "maintain", "--as-of", as_of.isoformat()]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "purchases" in result.stderr and blocker in result.stderr


def test_the_maintenance_service_runs_on_schedule_and_stops_on_sigterm(pg_dsn: str) -> None:
    port = free_port()
    env = {**os.environ, "POSTGRES_URL": pg_dsn, "METRICS_MAINTENANCE_PORT": str(port)}
    argv = [sys.executable, "-m", "infra.cli", "db", "maintain", "--every", "1h"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    try:
        ran = 'sentinel_maintenance_runs_total{outcome="ok"} 1.0'
        text = wait_for(f"http://127.0.0.1:{port}/metrics", lambda r: ran in r.text, 60).text
        assert "sentinel_maintenance_failing 0.0" in text
        health = wait_for(f"http://127.0.0.1:{port}/healthz", lambda r: r.status_code == 200, 10)
        assert health.json()["last_run_ok"] is True
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        stop_group(proc, 5)
    assert "maintenance stopped" in proc.stdout.read().decode()
