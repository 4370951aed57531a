"""The append-only audit log (``audit_log``, infra/migrations/0010): who did what to which
case, alert, blocklist entry or user, and when. PostgreSQL refuses UPDATE, DELETE and TRUNCATE
on it (a trigger), so a row once written stays.

Write the audit row in the same transaction as the change it describes.
"""

from __future__ import annotations

import getpass
from typing import Any

import orjson
import psycopg

INSERT = (
    "INSERT INTO audit_log (actor, action, target_kind, target_id, details)"
    " VALUES (%s, %s, %s, %s, %s) RETURNING audit_id"
)


def _args(actor: str, action: str, kind: str, target: str, details: dict | None) -> tuple:
    return actor, action, kind, target, orjson.dumps(details or {}).decode()


async def record(
    conn: psycopg.AsyncConnection, actor: str, action: str, kind: str, target: str,
    details: dict[str, Any] | None = None,
) -> int:
    cur = await conn.execute(INSERT, _args(actor, action, kind, target, details))
    row = await cur.fetchone()
    return int(row[0]) if row else 0


def record_sync(
    conn: psycopg.Connection, actor: str, action: str, kind: str, target: str,
    details: dict[str, Any] | None = None,
) -> int:
    row = conn.execute(INSERT, _args(actor, action, kind, target, details)).fetchone()
    return int(row[0]) if row else 0


def cli_actor() -> str:
    """The actor of a command-line action: the operating-system user who ran it."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


async def recent(
    conn: psycopg.AsyncConnection, kind: str | None = None, target: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT audit_id, at, actor, action, target_kind, target_id, details FROM audit_log"
        " WHERE (%(kind)s::text IS NULL OR target_kind = %(kind)s)"
        "   AND (%(target)s::text IS NULL OR target_id = %(target)s)"
        " ORDER BY audit_id DESC LIMIT %(limit)s",
        {"kind": kind, "target": target, "limit": limit},
    )
    names = ("audit_id", "at", "actor", "action", "target_kind", "target_id", "details")
    return [dict(zip(names, row, strict=True)) for row in await cur.fetchall()]
