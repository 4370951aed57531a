"""Database migrations: the ordered SQL files in infra/migrations/, each applied once.

``migrate()`` is idempotent and safe to run from several processes at once (an advisory lock
serialises them); each file runs in its own transaction and is recorded in
``schema_migrations``.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import psycopg

from infra import retention

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
LOCK_ID = 0x5E17_1E1  # any constant: the advisory lock all migrators share


def migration_files() -> list[Path]:
    return sorted(MIGRATIONS.glob("[0-9][0-9][0-9][0-9]_*.sql"))


def migrate(dsn: str, today: date | None = None) -> list[str]:
    """Apply what is not applied yet, then maintain the partitions as of ``today``; return
    the names applied now."""
    applied_now: list[str] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_ID,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
            for path in migration_files():
                if path.name in done:
                    continue
                with conn.transaction():
                    conn.execute(path.read_text())
                    conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (path.name,))
                applied_now.append(path.name)
            maintain(conn, today)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_ID,))
    return applied_now


def maintain(conn: psycopg.Connection, today: date | None = None) -> retention.Report:
    """Partitions ahead, default partitions emptied, rows past the policy removed
    (``infra.retention``); raises ``retention.MaintenanceError`` if any table failed."""
    return retention.maintain(conn, today)


def applied(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY name")]
