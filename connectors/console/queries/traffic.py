"""Traffic and abuse: gateway requests per minute by status (sampled from the gateway's own
metrics), refusals the gateway recorded as security events, who is rate-limited right now (the
gateway's sliding windows in Redis), the IP and wallet blocklists with expiry, top sources."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

import psycopg
from redis.asyncio import Redis

from connectors.console.queries.rows import fetch_all
from connectors.ratelimit import WINDOW_MS
from connectors.security_events import RATE_LIMIT_EXCEEDED, WEBHOOK_AUTH_FAILED
from infra import redis_keys
from infra.settings import Settings
from sinks.blocklist import KINDS, Blocklist

SCAN_LIMIT = 5000  # rate-limit windows looked at per kind
TOP = 15


def rate_limit_pattern(settings: Settings, kind: str) -> str:
    """The gateway's window keys (connectors/gateway.py ``_limits``)."""
    return redis_keys.rate_limit(redis_keys.namespace(settings.kafka.topic_prefix), kind, "*")


async def limited_now(redis: Redis, settings: Settings) -> dict[str, list[dict]]:
    """Per kind, the busiest windows: requests in the last minute against the limit."""
    hook = settings.webhook
    limits = {"ip": hook.rate_per_ip_per_min, "wallet": hook.rate_per_wallet_per_min}
    now_ms = int(time.time() * 1000)
    out = {}
    for kind, limit in limits.items():
        keys = []
        async for key in redis.scan_iter(match=rate_limit_pattern(settings, kind), count=1000):
            keys.append(key)
            if len(keys) >= SCAN_LIMIT:
                break
        async with redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zcount(key, now_ms - WINDOW_MS, "+inf")
                pipe.pttl(key)
            answers = await pipe.execute()
        prefix = len(rate_limit_pattern(settings, kind)) - 1
        rows = [
            {"value": key.decode()[prefix:], "requests": int(n), "limit": limit,
             "limited": int(n) >= limit, "expires_in_s": max(0, int(ttl)) // 1000}
            for key, n, ttl in zip(keys, answers[::2], answers[1::2], strict=True) if n
        ]  # fmt: skip
        rows.sort(key=lambda r: -r["requests"])
        out[kind] = rows[:TOP]
    return out


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
        "limited": await limited_now(redis, settings),
        "blocked": await asyncio.to_thread(blocked_now, blocklist),
    }
