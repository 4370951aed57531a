"""One loader per console section: the dict both its page and its /v1/ endpoint render."""

from __future__ import annotations

from datetime import UTC, datetime

from connectors.console.queries import cases, fraud, kpis, model, siem, system, traffic
from connectors.console.state import ConsoleState


async def load_kpis(state: ConsoleState) -> dict:
    now = datetime.now(UTC)
    async with state.pool.connection(timeout=5) as conn:
        data = await kpis.kpis(conn, now)
    data["live"] = await kpis.live_minutes(state.redis, now)
    return data


async def load_fraud(state: ConsoleState) -> dict:
    async with state.pool.connection(timeout=5) as conn:
        return await fraud.fraud(conn, datetime.now(UTC))


async def load_traffic(state: ConsoleState) -> dict:
    gateway = (await state.sampled()).gateway_minutes()
    async with state.pool.connection(timeout=5) as conn:
        return await traffic.traffic(
            conn, state.redis, state.blocklist, state.settings, gateway, datetime.now(UTC)
        )


async def load_model(state: ConsoleState) -> dict:
    async with state.pool.connection(timeout=5) as conn:
        return await model.model_health(conn, datetime.now(UTC))


async def load_system(state: ConsoleState) -> dict:
    sampler = await state.sampled()
    async with state.pool.connection(timeout=5) as conn:
        return await system.system(conn, state.redis, sampler)


async def load_alerts(state: ConsoleState, severity: str = "LOW", status: str | None = None) -> dict:
    async with state.pool.connection(timeout=5) as conn:
        rows = await siem.alerts(conn, severity, status)
    return {"alerts": rows, "severity": severity, "state": status,
            "severities": siem.SEVERITIES, "states": siem.STATES}  # fmt: skip


async def load_cases(state: ConsoleState) -> dict:
    async with state.pool.connection(timeout=5) as conn:
        data = await cases.queue(conn, state.settings.console.review_sla_s)
        data["closed"] = await cases.recently_closed(conn)
    return data


LOADERS = {
    "kpis": load_kpis,
    "fraud": load_fraud,
    "traffic": load_traffic,
    "model": load_model,
    "system": load_system,
    "cases": load_cases,
}
