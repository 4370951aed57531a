"""What analysts do from the console: claim, release and resolve review cases (resolving
publishes a ``Label`` to ``sentinel.labels.v1`` with the existing producer, then closes the
case), move alerts through their states, change the blocklists. Each is audited."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from redis.exceptions import RedisError

from connectors.console import audit
from connectors.console.principal import Principal
from connectors.console.queries import cases, siem
from connectors.console.state import ConsoleState
from sinks.blocklist import normalise

LABEL_TIMEOUT_S = 15.0


async def claim_case(state: ConsoleState, who: Principal, purchase_id: str) -> dict:
    async with state.pool.connection(timeout=5) as conn:
        return await cases.claim(conn, purchase_id, who.name)


async def release_case(state: ConsoleState, who: Principal, purchase_id: str) -> dict:
    async with state.pool.connection(timeout=5) as conn:
        return await cases.release(conn, purchase_id, who.name)


async def resolve_case(
    state: ConsoleState, who: Principal, purchase_id: str, outcome: str, pattern: str | None
) -> dict:
    """Publish the review's Label (acknowledged by the broker), then close the case. A failed
    publish leaves the case claimed; a retry after a lost close republishes the same label,
    which the labels table keeps once (key: purchase id and source)."""
    if outcome not in cases.OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(cases.OUTCOMES)}")
    async with state.pool.connection(timeout=5) as conn:
        await cases.claimed_by(conn, purchase_id, who.name)
    label = {
        "purchase_id": purchase_id, "occurred_at": datetime.now(UTC),
        "is_fraud": outcome == "fraud", "source": "MANUAL_REVIEW",
        "pattern": pattern or None, "reviewer": who.name,
    }  # fmt: skip
    publisher = await asyncio.to_thread(state.label_publisher)
    async with asyncio.timeout(LABEL_TIMEOUT_S):
        delivery = await asyncio.wrap_future(publisher.publish_label(label))
    where = {"topic": delivery.topic, "partition": delivery.partition, "offset": delivery.offset}
    async with state.pool.connection(timeout=5) as conn:
        return await cases.close(conn, purchase_id, who.name, outcome, where)


async def alert_transition(
    state: ConsoleState, who: Principal, alert_id: str, action: str, note: str | None
) -> dict:
    async with state.pool.connection(timeout=5) as conn:
        return await siem.transition(conn, alert_id, action, who.name, note)


async def change_blocklist(
    state: ConsoleState, who: Principal, action: str, kind: str, value: str,
    ttl_s: float | None = None, reason: str = "console",
) -> dict:
    """Add (``ttl_s`` None: until removed) or remove an entry. The audit row is written
    first (PostgreSQL down: no change); a failed change gets a second, ``.failed`` row."""
    value = normalise(kind, value)
    if action not in ("add", "remove"):
        raise ValueError(f"unknown blocklist action {action!r}")
    details = {"ttl_s": ttl_s, "reason": reason} if action == "add" else {}
    async with state.pool.connection(timeout=5) as conn:  # no audit row, no change
        await audit.record(conn, who.name, f"blocklist.{action}", kind, value, details)
    try:
        if action == "add":
            await asyncio.to_thread(state.blocklist.add, kind, value, ttl_s, reason)
            changed = True
        else:
            changed = await asyncio.to_thread(state.blocklist.remove, kind, value)
    except RedisError as exc:
        async with state.pool.connection(timeout=5) as conn:
            await audit.record(conn, who.name, f"blocklist.{action}.failed", kind, value,
                               {"error": type(exc).__name__})  # fmt: skip
        raise
    return {"kind": kind, "value": value, "action": action, "changed": changed}
