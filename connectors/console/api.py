"""The JSON read API under /v1/: what the console shows, for machines (API key) and for the
console's own live updates (session). Every route needs a principal; viewers get IPs masked.
"""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Path, Query, Request
from redis.exceptions import RedisError
from starlette.responses import Response

from connectors.console.access import requires
from connectors.console.principal import Principal
from connectors.console.queries import cases, decisions
from connectors.console.render import json_answer
from connectors.console.sections import LOADERS, load_alerts
from connectors.console.state import ConsoleState
from connectors.decision_wait import TooManyWaits

router = APIRouter(prefix="/v1", tags=["read"])
Id = Annotated[str, Path(min_length=1, max_length=132)]
Wallet = Annotated[str, Path(pattern=r"^0[xX][0-9a-fA-F]{40}$")]


def _state(request: Request) -> ConsoleState:
    return request.app.state.console


def _error(status: int, code: str, message: str, **headers: str) -> Response:
    response = json_answer(None, {"error": code, "message": message}, status)
    response.headers.update(headers)
    return response


@router.get("/decisions/{decision_id}", responses={404: {"description": "No decision yet"}})
async def get_decision(
    request: Request,
    decision_id: Id,
    wait_ms: Annotated[int, Query(ge=0, le=30_000)] = 0,
    principal: Principal = requires("viewer"),
) -> Response:
    """A decision by decision id (``dec_<purchase_id>``) or purchase id, with its features,
    purchase and labels. ``wait_ms`` waits (capped at ``SENTINEL_CONSOLE_MAX_WAIT_MS``, a few
    waits per client at once) for a decision not stored yet."""
    state = _state(request)
    async with state.pool.connection(timeout=5) as conn:
        found = await decisions.decision(conn, decision_id)
    if found is None and wait_ms:
        found = await _wait_for(state, principal, decisions.purchase_id_of(decision_id), wait_ms)
        if isinstance(found, Response):
            return found
    if found is None:
        return _error(404, "not_found", f"no decision for {decision_id!r} yet")
    return json_answer(principal, found)


async def _wait_for(
    state: ConsoleState, principal: Principal, purchase_id: str, wait_ms: int
) -> dict | Response | None:
    """Wait on the Redis sink's notification; then PostgreSQL, else the Redis copy."""
    wait_s = min(wait_ms, state.settings.console.max_wait_ms) / 1000
    try:
        with state.slots.hold(principal.client_id):
            raw = await state.waiter.get(purchase_id, wait_s)
    except TooManyWaits:
        return _error(429, "too_many_waits", "too many waits in flight", **{"Retry-After": "1"})
    except RedisError:
        return _error(503, "unavailable", "decision store unavailable", **{"Retry-After": "1"})
    if raw is None:
        return None
    async with state.pool.connection(timeout=5) as conn:
        stored = await decisions.decision(conn, purchase_id)
    return stored or {**orjson.loads(raw), "source": "redis"}


@router.get("/wallets/{wallet}/decisions")
async def wallet_decisions(
    request: Request,
    wallet: Wallet,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    principal: Principal = requires("viewer"),
) -> Response:
    """The wallet's latest decisions, newest first."""
    async with _state(request).pool.connection(timeout=5) as conn:
        rows = await decisions.by_wallet(conn, wallet, limit)
    return json_answer(principal, {"wallet": wallet.lower(), "decisions": rows})


@router.get("/wallets/{wallet}")
async def wallet(
    request: Request, wallet: Wallet, principal: Principal = requires("viewer")
) -> Response:
    """The wallet's purchase history and the wallets linked to it by IP, device or card."""
    async with _state(request).pool.connection(timeout=5) as conn:
        history = await decisions.wallet_history(conn, wallet)
        linked = await decisions.linked_wallets(conn, wallet)
    return json_answer(principal, {"wallet": wallet.lower(), "history": history, "linked": linked})


def _section(name: str, summary: str):
    async def endpoint(request: Request, principal: Principal = requires("viewer")) -> Response:
        return json_answer(principal, await LOADERS[name](_state(request)))

    endpoint.__doc__ = summary
    router.add_api_route(f"/{name}", endpoint, methods=["GET"], name=f"get_{name}",
                         summary=summary)  # fmt: skip


_section("kpis", "KPIs of the last 24 h beside the 24 h before, hourly series, last hour live")
_section("fraud", "Score distribution (24 h) and the latest high-risk decisions")
_section("traffic", "Gateway requests by status, refusals, rate-limited and blocked sources")
_section("model", "Confusion matrix, precision/recall (24 h, 7 d), drift, champion/challenger")
_section("system", "Services, consumer lag per group and partition, dead letters, throughput")
_section("cases", "Open and claimed review cases, oldest first, with SLA age")


@router.get("/cases/{purchase_id}")
async def get_case(
    request: Request, purchase_id: Id, principal: Principal = requires("viewer")
) -> Response:
    """One review case with its decision, the wallet's history and linked wallets."""
    async with _state(request).pool.connection(timeout=5) as conn:
        found = await cases.case(conn, purchase_id)
        if found is None:
            return _error(404, "not_found", f"no case {purchase_id!r}")
        found["decision"] = await decisions.decision(conn, purchase_id)
        found["history"] = await decisions.wallet_history(conn, found["wallet"])
        found["linked"] = await decisions.linked_wallets(conn, found["wallet"])
    return json_answer(principal, found)


@router.get("/alerts")
async def get_alerts(
    request: Request,
    severity: Annotated[Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"], Query()] = "LOW",
    state: Annotated[Literal["open", "acknowledged", "resolved"] | None, Query()] = None,
    principal: Principal = requires("viewer"),
) -> Response:
    """SIEM alerts at or above ``severity`` (optionally in one ``state``), newest first."""
    return json_answer(principal, await load_alerts(_state(request), severity, state))
