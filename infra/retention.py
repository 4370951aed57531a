"""Retention of the system of record, as of a day (UTC): ``maintain(conn, as_of)``.

The policy is the ``retention_policy`` table (migrations 0002 and 0004): per table, how many
days to keep and which column ages a row. A row is past the policy when its day (UTC) is
before ``as_of - keep_days``. For each table, in its own transactions:

- partitioned tables (one partition per day, plus a default partition that catches any row
  whose day has no partition yet): every day that has rows in the default partition, and
  every day from ``as_of - 1`` to ``as_of + ahead``, gets its partition. A partition is built
  beside the table, the default partition's rows of that day are MOVED into it, and it is
  attached, all in one transaction with the default partition locked (PostgreSQL refuses to
  create a partition while the default holds rows of its range). Rows of the default
  partition past the policy are deleted, and day partitions past the policy are dropped;
- other tables (labels, alerts): rows past the policy are deleted.

A failure on one table does not stop the others, and none is swallowed: ``maintain`` raises
``MaintenanceError`` with the report of what was done and what failed.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

AHEAD_DAYS = 7
LOCK_TIMEOUT_MS = 10_000  # wait at most this long for a table lock; then the step fails
DAY_SUFFIX = re.compile(r"_p(\d{8})$")


@dataclass(frozen=True)
class Policy:
    table: str
    keep_days: int
    time_column: str
    partitioned: bool

    def oldest_kept(self, as_of: date) -> date:
        """The oldest day kept; rows of earlier days are past the policy."""
        return as_of - timedelta(days=self.keep_days)


@dataclass
class Report:
    as_of: date
    partitions_created: Counter[str] = field(default_factory=Counter)
    partitions_dropped: Counter[str] = field(default_factory=Counter)
    rows_moved: Counter[str] = field(default_factory=Counter)
    rows_deleted: Counter[str] = field(default_factory=Counter)
    failures: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        parts = [
            f"{sum(self.partitions_created.values())} partition(s) created",
            f"{sum(self.rows_moved.values())} row(s) moved out of default partitions",
            f"{sum(self.partitions_dropped.values())} partition(s) dropped",
            f"{sum(self.rows_deleted.values())} row(s) deleted",
        ]
        return f"as of {self.as_of}: " + ", ".join(parts)


class MaintenanceError(RuntimeError):
    """At least one table could not be maintained; ``report`` says what was done and why."""

    def __init__(self, report: Report):
        failed = "; ".join(f"{t}: {e}" for t, e in report.failures.items())
        super().__init__(f"retention failed for {len(report.failures)} table(s): {failed}")
        self.report = report


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def policies(conn: psycopg.Connection) -> list[Policy]:
    rows = conn.execute(
        "SELECT r.table_name, r.keep_days, r.time_column, c.relkind"
        " FROM retention_policy r LEFT JOIN pg_class c ON c.oid = to_regclass(r.table_name)"
        " ORDER BY r.table_name"
    ).fetchall()
    return [Policy(name, keep, column, kind == "p") for name, keep, column, kind in rows]


def maintain(
    conn: psycopg.Connection, as_of: date | None = None, ahead: int = AHEAD_DAYS
) -> Report:
    """Apply the policy as of ``as_of`` (default: today, UTC) on an autocommit connection."""
    report = Report(as_of or datetime.now(UTC).date())
    conn.execute(f"SET lock_timeout = {int(LOCK_TIMEOUT_MS)}")
    for policy in policies(conn):
        try:
            if policy.partitioned:
                _maintain_partitioned(conn, policy, report, ahead)
            else:
                _delete_past(conn, policy, policy.table, report)
        except psycopg.Error as exc:
            report.failures[policy.table] = f"{type(exc).__name__}: {exc}".strip()
            log.error("retention of %s failed: %s", policy.table, exc)
    if report.failures:
        raise MaintenanceError(report)
    return report


def _maintain_partitioned(
    conn: psycopg.Connection, policy: Policy, report: Report, ahead: int
) -> None:
    oldest = policy.oldest_kept(report.as_of)
    default = _default_partition(conn, policy.table)
    existing = _day_partitions(conn, policy.table)
    wanted = {report.as_of + timedelta(days=n) for n in range(-1, ahead + 1)}
    if default is not None:
        _delete_past(conn, policy, default, report)
        wanted |= _days_in(conn, default, policy.time_column, oldest)
    for day in sorted(d for d in wanted - existing.keys() if d >= oldest):
        moved = _create_partition(conn, policy, day, default)
        report.partitions_created[policy.table] += 1
        report.rows_moved[policy.table] += moved
    for day, name in sorted(existing.items()):
        if day < oldest:
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
            report.partitions_dropped[policy.table] += 1


def _delete_past(conn: psycopg.Connection, policy: Policy, table: str, report: Report) -> None:
    query = sql.SQL("DELETE FROM {} WHERE {} < %s").format(
        sql.Identifier(table), sql.Identifier(policy.time_column)
    )
    cur = conn.execute(query, (day_start(policy.oldest_kept(report.as_of)),))
    report.rows_deleted[policy.table] += max(cur.rowcount, 0)


def _default_partition(conn: psycopg.Connection, table: str) -> str | None:
    row = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = to_regclass(%s) AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'",
        (table,),
    ).fetchone()
    return row[0] if row else None


def _day_partitions(conn: psycopg.Connection, table: str) -> dict[date, str]:
    names = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = to_regclass(%s)",
        (table,),
    ).fetchall()
    days = {}
    for (name,) in names:
        match = DAY_SUFFIX.search(name)
        if match and name == partition_name(table, _parse_day(match.group(1))):
            days[_parse_day(match.group(1))] = name
    return days


def _parse_day(digits: str) -> date:
    return datetime.strptime(digits, "%Y%m%d").replace(tzinfo=UTC).date()


def _days_in(conn: psycopg.Connection, table: str, column: str, oldest: date) -> set[date]:
    query = sql.SQL("SELECT DISTINCT ({c} AT TIME ZONE 'UTC')::date FROM {t} WHERE {c} >= %s")
    rows = conn.execute(
        query.format(t=sql.Identifier(table), c=sql.Identifier(column)), (day_start(oldest),)
    ).fetchall()
    return {row[0] for row in rows}


def _columns(conn: psycopg.Connection, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s)"
        " AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (table,),
    ).fetchall()
    return [row[0] for row in rows]


def _create_partition(
    conn: psycopg.Connection, policy: Policy, day: date, default: str | None
) -> int:
    """Build ``day``'s partition, move the default partition's rows of that day into it and
    attach it, in one transaction. Returns the number of rows moved."""
    parent = sql.Identifier(policy.table)
    part = sql.Identifier(partition_name(policy.table, day))
    low, high = day_start(day), day_start(day + timedelta(days=1))
    moved = 0
    with conn.transaction():
        conn.execute(sql.SQL("LOCK TABLE {} IN SHARE UPDATE EXCLUSIVE MODE").format(parent))
        conn.execute(
            sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)").format(
                part, parent
            )
        )
        if default is not None:
            source = sql.Identifier(default)
            conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(source))
            cols = sql.SQL(", ").join(map(sql.Identifier, _columns(conn, policy.table)))
            move = sql.SQL(
                "WITH moved AS (DELETE FROM {src} WHERE {c} >= %s AND {c} < %s RETURNING {cols})"
                " INSERT INTO {part} ({cols}) SELECT {cols} FROM moved"
            ).format(src=source, c=sql.Identifier(policy.time_column), cols=cols, part=part)
            moved = max(conn.execute(move, (low, high)).rowcount, 0)
        conn.execute(
            sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                parent, part, sql.Literal(low.isoformat()), sql.Literal(high.isoformat())
            )
        )
    if moved:
        log.info("moved %d row(s) of %s from %s into %s", moved, day, default, part.as_string())
    return moved
