"""Traffic and abuse: gateway requests per minute by status (sampled from the gateway's own
metrics), refusals the gateway recorded as security events, who is rate-limited right now (the
gateway's sliding windows in Redis), the IP and wallet blocklists with expiry, top sources."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import psycopg
from redis.asyncio import Redis

from connectors.console.queries.rows import fetch_all
from connectors.ratelimit import WINDOW_MS
from connectors.security_events import RATE_LIMIT_EXCEEDED, WEBHOOK_AUTH_FAILED
from infra import redis_keys
from infra.settings import Settings
from sinks.blocklist import KINDS, Blocklist

LIMITED_LOOKBACK = timedelta(minutes=10)  # sources refused this recently are shown
TOP = 15


async def limited_now(
    conn: psycopg.AsyncConnection, redis: Redis, settings: Settings, now: datetime
) -> dict[str, list[dict]]:
    """IPs and wallets the gateway refused (429) in the last ten minutes, busiest first, with
    their requests in the current window against the limit and when that window ends.

    The gateway records each refusal as a ``rate_limit_exceeded`` security event naming what
    the limit was keyed on; only those sources' windows are read from Redis (a scan of every
    window would cost as much as the whole keyspace)."""
    hook, ns = settings.webhook, redis_keys.namespace(settings.kafka.topic_prefix)
    limits = {"ip": hook.rate_per_ip_per_min, "wallet": hook.rate_per_wallet_per_min}
    refused = await fetch_all(
        conn,
        "SELECT details->>'limit' AS kind, CASE details->>'limit' WHEN 'ip' THEN host(ip)"
        " ELSE wallet END AS value, count(*)::int AS refusals, max(occurred_at) AS last_refused"
        " FROM security_events WHERE kind = %s AND occurred_at >= %s"
        " AND details->>'limit' IN ('ip', 'wallet') GROUP BY 1, 2 ORDER BY 3 DESC LIMIT %s",
        (RATE_LIMIT_EXCEEDED, now - LIMITED_LOOKBACK, 2 * TOP),
    )
    refused = [r for r in refused if r["value"]]
    now_ms = int(now.timestamp() * 1000)
    async with redis.pipeline(transaction=False) as pipe:
        for row in refused:
            key = redis_keys.rate_limit(ns, row["kind"], row["value"])
            pipe.zcount(key, now_ms - WINDOW_MS, "+inf")
            pipe.pttl(key)
        answers = await pipe.execute()
    out: dict[str, list[dict]] = {"ip": [], "wallet": []}
    for row, n, ttl in zip(refused, answers[::2], answers[1::2], strict=True):
        limit = limits[row["kind"]]
        out[row["kind"]].append({**row, "requests": int(n), "limit": limit, "limited": int(n) >= limit,
                                 "expires_in_s": max(0, int(ttl)) // 1000})  # fmt: skip
    return {kind: rows[:TOP] for kind, rows in out.items()}


def blocked_now(blocklist: Blocklist) -> dict[str, list[dict]]:
    """Blocklist entries in force, soonest expiry first (sync: run in a thread)."""
    return {
        kind: [
            {"value": e.value, "reason": e.reason, "added_at_ms": e.added_at_ms,
             "expires_at_ms": e.expires_at_ms}
            for e in blocklist.list(kind)[:200]
        ]
        for kind in KINDS
    }  # fmt: skip


async def refusals(conn: psycopg.AsyncConnection, now: datetime) -> dict:
    """Rate-limit and authentication refusals per minute (last hour), and top sources."""
    since = now - timedelta(hours=1)
    kinds = [RATE_LIMIT_EXCEEDED, WEBHOOK_AUTH_FAILED]
    per_minute = await fetch_all(
        conn,
        "SELECT date_trunc('minute', occurred_at) AS minute, kind, count(*)::int AS n"
        " FROM security_events WHERE kind = ANY(%s) AND occurred_at >= %s GROUP BY 1, 2"
        " ORDER BY 1",
        (kinds, since),
    )
    top = await fetch_all(
        conn,
        "SELECT coalesce(host(ip), wallet, '-') AS source, count(*)::int AS refusals,"
        " max(occurred_at) AS last_seen, array_agg(DISTINCT details->>'limit') AS limits"
        " FROM security_events WHERE kind = ANY(%s) AND occurred_at >= %s"
        " GROUP BY 1 ORDER BY 2 DESC LIMIT %s",
        (kinds, since, TOP),
    )
    return {"per_minute": per_minute, "top_sources": top, "total": sum(r["n"] for r in per_minute)}


def gateway_chart(per_minute: list[dict]) -> dict:
    """Requests per minute by status as chart series (one line per status)."""
    statuses = sorted({s for row in per_minute for s in row["per_min"]})
    return {"kind": "lines", "xtime": True, "x": [row["at"] for row in per_minute],
            "series": [{"label": f"HTTP {s}", "values": [row["per_min"].get(s, 0) for row in per_minute]}
                       for s in statuses]}  # fmt: skip


async def traffic(
    conn: psycopg.AsyncConnection, redis: Redis, blocklist: Blocklist, settings: Settings,
    gateway_minutes: dict, now: datetime,
) -> dict:
    return {
        "gateway": gateway_minutes,
        "gateway_chart": gateway_chart(gateway_minutes.get("per_minute", [])),
        "refusals": await refusals(conn, now),
        "limited": await limited_now(conn, redis, settings, now),
        "blocked": await asyncio.to_thread(blocked_now, blocklist),
    }
