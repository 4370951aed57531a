"""The fraud section: the score distribution of the last 24 hours (beside the day before) and
the live feed of high-risk decisions (MANUAL_REVIEW and BLOCKED), newest first."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg

from connectors.console.queries.kpis import windows
from connectors.console.queries.rows import fetch_all

HIGH_RISK = ("MANUAL_REVIEW", "BLOCKED")
FEED_LOOKBACK = timedelta(days=7)
SCORE_BUCKETS = 20


async def score_distribution(conn: psycopg.AsyncConnection, now: datetime) -> dict:
    prev_start, start, end = windows(now)
    rows = await fetch_all(
        conn,
        "SELECT hour >= %(mid)s AS current, bucket, sum(n)::int AS n FROM console_hour_hist"
        " WHERE kind = 'score' AND hour >= %(lo)s AND hour < %(hi)s GROUP BY 1, 2",
        {"lo": prev_start, "mid": start, "hi": end},
    )
    current, previous = [0] * SCORE_BUCKETS, [0] * SCORE_BUCKETS
    for row in rows:
        (current if row["current"] else previous)[row["bucket"]] = row["n"]
    edges = [round(i / SCORE_BUCKETS, 2) for i in range(SCORE_BUCKETS)]
    return {"window": {"start": start, "end": end}, "bucket_starts": edges,
            "current": current, "previous": previous}  # fmt: skip


async def high_risk_feed(
    conn: psycopg.AsyncConnection, now: datetime, limit: int = 50
) -> list[dict]:
    return await fetch_all(
        conn,
        "SELECT purchase_id, decision_id, occurred_at, decided_at, wallet, decision, score,"
        " model_score, rule_score, reasons, contributions, model_version FROM decisions"
        " WHERE decision IN ('MANUAL_REVIEW', 'BLOCKED') AND occurred_at >= %s"
        " ORDER BY occurred_at DESC LIMIT %s",
        (now - FEED_LOOKBACK, limit),
    )


async def fraud(conn: psycopg.AsyncConnection, now: datetime) -> dict:
    return {"scores": await score_distribution(conn, now),
            "feed": await high_risk_feed(conn, now)}  # fmt: skip
