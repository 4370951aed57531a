"""SIEM alerts with their responses and triage state (open → acknowledged → resolved, with who
and when). State changes are audited in the same transaction."""

from __future__ import annotations

import psycopg

from connectors.console import audit
from connectors.console.queries.rows import NotFound, fetch_all, fetch_one

SEVERITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
STATES = ("open", "acknowledged", "resolved")
NEXT = {"acknowledge": ("open", "acknowledged"), "resolve": ("acknowledged", "resolved")}


class TransitionRefused(ValueError):
    pass


_SELECT = """
SELECT a.alert_id, a.rule, a.group_key, a.severity, a.count, a.first_seen, a.last_seen,
       a.event_ids, a.responses, a.created_at, coalesce(s.state, 'open') AS state,
       s.acknowledged_by, s.acknowledged_at, s.resolved_by, s.resolved_at, s.note
FROM alerts a LEFT JOIN alert_states s ON s.alert_id = a.alert_id
"""


async def alerts(
    conn: psycopg.AsyncConnection, min_severity: str = "LOW", state: str | None = None,
    limit: int = 100,
) -> list[dict]:
    wanted = list(SEVERITIES[SEVERITIES.index(min_severity):])
    return await fetch_all(
        conn,
        _SELECT + " WHERE a.severity = ANY(%(sev)s)"
        " AND (%(state)s::text IS NULL OR coalesce(s.state, 'open') = %(state)s)"
        " ORDER BY a.last_seen DESC LIMIT %(limit)s",
        {"sev": wanted, "state": state, "limit": limit},
    )


async def alert(conn: psycopg.AsyncConnection, alert_id: str) -> dict | None:
    return await fetch_one(conn, _SELECT + " WHERE a.alert_id = %s", (alert_id,))


async def transition(
    conn: psycopg.AsyncConnection, alert_id: str, action: str, actor: str, note: str | None
) -> dict:
    """Acknowledge an open alert or resolve an acknowledged one; TransitionRefused else."""
    if action not in NEXT:
        raise TransitionRefused(f"unknown action {action!r}")
    before, after = NEXT[action]
    who = "acknowledged" if action == "acknowledge" else "resolved"
    async with conn.transaction():
        found = await fetch_one(conn, _SELECT + " WHERE a.alert_id = %s FOR UPDATE OF a", (alert_id,))
        if found is None:
            raise NotFound(f"alert {alert_id}")
        if found["state"] != before:
            raise TransitionRefused(f"alert is {found['state']}; {action} needs {before}")
        await conn.execute(
            f"INSERT INTO alert_states (alert_id, state, {who}_by, {who}_at, note)"
            " VALUES (%(id)s, %(state)s, %(actor)s, now(), %(note)s)"
            f" ON CONFLICT (alert_id) DO UPDATE SET state = EXCLUDED.state,"
            f" {who}_by = EXCLUDED.{who}_by, {who}_at = EXCLUDED.{who}_at,"
            " note = coalesce(EXCLUDED.note, alert_states.note)",
            {"id": alert_id, "state": after, "actor": actor, "note": note},
        )
        await audit.record(conn, actor, f"alert.{action}", "alert", alert_id,
                           {"from": before, "to": after, "note": note})  # fmt: skip
    return await alert(conn, alert_id)
