"""System: each service's status, consumer lag per group and partition (records and seconds),
dead letters per topic and sink throughput, from the sampler's latest Kafka snapshot and
direct checks of PostgreSQL and Redis."""

from __future__ import annotations

import time

import psycopg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from connectors.console.sampler import Sampler


async def _postgres_ok(conn: psycopg.AsyncConnection) -> bool:
    try:
        await conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


async def _redis_ok(redis: Redis) -> bool:
    try:
        return bool(await redis.ping())
    except RedisError:
        return False


def _group_status(group: dict) -> str:
    if group["members"] and group["state"] == "STABLE":
        return "up"
    return "down" if not group["members"] else group["state"].lower()


async def system(conn: psycopg.AsyncConnection, redis: Redis, sampler: Sampler) -> dict:
    snap = sampler.kafka
    services = [
        {"service": "postgres", "status": "up" if await _postgres_ok(conn) else "down"},
        {"service": "redis", "status": "up" if await _redis_ok(redis) else "down"},
        {"service": "kafka", "status": "down" if sampler.kafka_error else "up" if snap else "unknown",
         "detail": sampler.kafka_error},
    ]  # fmt: skip
    services += snap["probes"] if snap else []
    groups = snap["groups"] if snap else []
    for group in groups:
        services.append({"service": group["service"], "status": _group_status(group),
                         "detail": f"{group['group']}: {group['members']} member(s)"})  # fmt: skip
    return {
        "services": services,
        "groups": groups,
        "dead_letters": snap["dead_letters"] if snap else {},
        "sampled_s_ago": round(time.time() - snap["taken_at"], 1) if snap else None,
        "kafka_error": sampler.kafka_error,
    }
