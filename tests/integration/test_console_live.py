"""The KPI page's last hour per minute, read back from the Redis sink's own counters on real
Redis (one script call for all the minutes): a minute without decisions reads as zero."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
import redis.asyncio as aioredis

from connectors.console.queries.kpis import live_minutes
from infra import topics
from infra.settings import Settings
from sinks.redis import RedisSink, kpi_bucket
from sinks.testing import T0, decision, records

pytestmark = pytest.mark.integration


@pytest.fixture
def minutes(redis_client):
    """Three minutes of this test's own (Redis is shared by the session), removed after."""
    first = T0 + timedelta(days=int(uuid.uuid4().hex[:6], 16) % 3000, minutes=7)
    stamps = [first + timedelta(minutes=i) for i in range(3)]
    yield stamps
    redis_client.delete(*[kpi_bucket(m) for m in stamps])


def test_live_minutes_are_the_sinks_counters_minute_by_minute(stack: Settings, minutes) -> None:
    first, empty, last = minutes
    tag = uuid.uuid4().hex[:8]
    written = [decision(i, purchase_id=f"{tag}-{i}", occurred_at=at, decided_at=at,
                        decision=verdict, latency_ms=ms)
               for i, (at, verdict, ms) in enumerate([(first, "APPROVED", 10.0),
                                                      (first, "BLOCKED", 30.0),
                                                      (last, "REQUIRE_2FA", 7.0)])]  # fmt: skip
    sink = RedisSink.from_url(stack.redis.dsn)
    sink.setup()
    try:
        sink.write(records(topics.DECISIONS, written))
    finally:
        sink.close()

    async def read() -> list[dict]:
        client = aioredis.from_url(stack.redis.dsn)
        try:
            return await live_minutes(client, last + timedelta(seconds=30), minutes=3)
        finally:
            await client.aclose()

    rows = asyncio.run(read())
    assert [r["minute"] for r in rows] == [first, empty, last]
    assert (rows[0]["decisions"], rows[0]["APPROVED"], rows[0]["BLOCKED"]) == (2, 1, 1)
    assert rows[0]["latency_ms_mean"] == pytest.approx(20.0)
    assert (rows[1]["decisions"], rows[1]["latency_ms_mean"]) == (0, None)
    assert (rows[2]["decisions"], rows[2]["REQUIRE_2FA"], rows[2]["latency_ms_mean"]) == (1, 1, 7.0)
