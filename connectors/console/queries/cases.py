"""The review queue: every MANUAL_REVIEW decision is a case (opened by a trigger as the
decision is stored, infra/migrations/0013). Oldest first; an analyst claims a case, then
closes it as fraud or legit (the caller publishes the Label first). Every change is audited
in its transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from connectors.console import audit
from connectors.console.queries.rows import NotFound, fetch_all, fetch_one

OUTCOMES = ("fraud", "legit")


class CaseConflict(ValueError):
    """The case is not in the state the action needs (claimed by someone else, closed...)."""


_SELECT = """
SELECT c.purchase_id, 'dec_' || c.purchase_id AS decision_id, c.occurred_at, c.wallet, c.score,
       c.opened_at, c.state, c.claimed_by, c.claimed_at, c.outcome, c.closed_by, c.closed_at,
       extract(epoch FROM (coalesce(c.closed_at, now()) - c.opened_at))::bigint AS age_s,
       d.reasons, d.contributions, d.model_score, d.rule_score
FROM review_cases c
LEFT JOIN decisions d ON d.purchase_id = c.purchase_id AND d.occurred_at = c.occurred_at
"""


async def queue(conn: psycopg.AsyncConnection, sla_s: int, limit: int = 100) -> dict:
    rows = await fetch_all(
        conn, _SELECT + " WHERE c.state <> 'closed' ORDER BY c.opened_at LIMIT %s", (limit,)
    )
    for row in rows:
        row["late"] = row["age_s"] > sla_s
    stats = await fetch_one(
        conn,
        "SELECT count(*) FILTER (WHERE state = 'open') AS open,"
        " count(*) FILTER (WHERE state = 'claimed') AS claimed,"
        " (SELECT count(*) FROM review_cases WHERE state = 'closed'"
        "   AND closed_at >= now() - interval '24 hours') AS closed_24h,"
        " min(opened_at) AS oldest_opened_at"
        " FROM review_cases WHERE state <> 'closed'",
    )
    return {"cases": rows, "stats": stats, "sla_s": sla_s}


async def case(conn: psycopg.AsyncConnection, purchase_id: str) -> dict | None:
    return await fetch_one(conn, _SELECT + " WHERE c.purchase_id = %s", (purchase_id,))


async def recently_closed(conn: psycopg.AsyncConnection, limit: int = 20) -> list[dict]:
    return await fetch_all(
        conn,
        _SELECT + " WHERE c.state = 'closed' AND c.closed_at >= %s ORDER BY c.closed_at DESC"
        " LIMIT %s",
        (datetime.now(UTC) - timedelta(days=7), limit),
    )


async def _change(
    conn: psycopg.AsyncConnection, purchase_id: str, actor: str, action: str, update: str,
    params: dict, details: dict | None = None,
) -> dict:
    async with conn.transaction():
        cur = await conn.execute(update, {"id": purchase_id, "actor": actor, **params})
        if cur.rowcount == 0:
            found = await case(conn, purchase_id)
            if found is None:
                raise NotFound(f"case {purchase_id}")
            holder = f" by {found['claimed_by']}" if found["claimed_by"] else ""
            raise CaseConflict(f"case is {found['state']}{holder}; cannot {action}")
        await audit.record(conn, actor, f"case.{action}", "case", purchase_id, details)
    found = await case(conn, purchase_id)
    assert found is not None
    return found


async def claim(conn: psycopg.AsyncConnection, purchase_id: str, actor: str) -> dict:
    return await _change(
        conn, purchase_id, actor, "claim",
        "UPDATE review_cases SET state = 'claimed', claimed_by = %(actor)s, claimed_at = now()"
        " WHERE purchase_id = %(id)s AND state = 'open'", {},
    )


async def release(conn: psycopg.AsyncConnection, purchase_id: str, actor: str) -> dict:
    return await _change(
        conn, purchase_id, actor, "release",
        "UPDATE review_cases SET state = 'open', claimed_by = NULL, claimed_at = NULL"
        " WHERE purchase_id = %(id)s AND state = 'claimed' AND claimed_by = %(actor)s", {},
    )


async def claimed_by(conn: psycopg.AsyncConnection, purchase_id: str, actor: str) -> dict:
    """The case, if ``actor`` holds its claim; CaseConflict (or NotFound) else."""
    found = await case(conn, purchase_id)
    if found is None:
        raise NotFound(f"case {purchase_id}")
    if found["state"] != "claimed" or found["claimed_by"] != actor:
        holder = f" by {found['claimed_by']}" if found["claimed_by"] else ""
        raise CaseConflict(f"case is {found['state']}{holder}; claim it before resolving")
    return found


async def close(
    conn: psycopg.AsyncConnection, purchase_id: str, actor: str, outcome: str, label: dict
) -> dict:
    """Close a case ``actor`` holds, recording where its Label went."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}")
    return await _change(
        conn, purchase_id, actor, "resolve",
        "UPDATE review_cases SET state = 'closed', outcome = %(outcome)s, closed_by = %(actor)s,"
        " closed_at = now() WHERE purchase_id = %(id)s AND state = 'claimed'"
        " AND claimed_by = %(actor)s",
        {"outcome": outcome}, {"outcome": outcome, "label": label},
    )
