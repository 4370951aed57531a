"""The console's HTML sections and their forms. Each page renders the same loader the JSON API
returns (sections.py), so the first paint has the numbers; console.js re-fetches the page every
few seconds and swaps its live regions. Forms post here with the session's CSRF token and
redirect back (303) with the outcome in the query string."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from starlette.responses import RedirectResponse, Response

from connectors.base import DeliveryFailed
from connectors.console import actions
from connectors.console.access import requires
from connectors.console.principal import Principal
from connectors.console.queries import cases, decisions
from connectors.console.queries.cases import CaseConflict
from connectors.console.queries.rows import NotFound
from connectors.console.queries.siem import TransitionRefused
from connectors.console.render import page
from connectors.console.sections import LOADERS, load_alerts
from connectors.console.state import ConsoleState

router = APIRouter(include_in_schema=False)
Id = Annotated[str, Path(min_length=1, max_length=132)]
TEMPLATES = {"kpis": "kpis.html", "fraud": "fraud.html", "traffic": "traffic.html",
             "model": "model.html", "system": "system.html", "cases": "cases.html"}  # fmt: skip


def _state(request: Request) -> ConsoleState:
    return request.app.state.console


def _section_page(name: str, path: str) -> None:
    async def endpoint(
        request: Request, message: str | None = None, principal: Principal = requires("viewer")
    ) -> Response:
        data = await LOADERS[name](_state(request))
        return page(request, TEMPLATES[name], principal, name, data=data, message=message,
                    settings=_state(request).settings.console)  # fmt: skip

    router.add_api_route(path, endpoint, methods=["GET"], name=f"page_{name}")


for _name, _path in (("kpis", "/"), ("fraud", "/fraud"), ("traffic", "/traffic"),
                     ("model", "/model"), ("system", "/system"), ("cases", "/cases")):  # fmt: skip
    _section_page(_name, _path)


@router.get("/siem")
async def siem_page(
    request: Request,
    severity: Annotated[str, Query(pattern="^(LOW|MEDIUM|HIGH|CRITICAL)$")] = "LOW",
    state: Annotated[str | None, Query(pattern="^(open|acknowledged|resolved)$")] = None,
    message: str | None = None,
    principal: Principal = requires("viewer"),
) -> Response:
    data = await load_alerts(_state(request), severity, state)
    return page(request, "siem.html", principal, "siem", data=data, message=message)


@router.get("/decisions/{decision_id}")
async def decision_page(request: Request, decision_id: Id,
                        principal: Principal = requires("viewer")) -> Response:  # fmt: skip
    async with _state(request).pool.connection(timeout=5) as conn:
        found = await decisions.decision(conn, decision_id)
        if found is None:
            return page(request, "error.html", principal, "fraud", 404,
                        status=404, message=f"no decision for {decision_id} yet")  # fmt: skip
        history = await decisions.wallet_history(conn, found["wallet"])
        linked = await decisions.linked_wallets(conn, found["wallet"])
    return page(request, "decision.html", principal, "fraud",
                d=found, history=history, linked=linked)  # fmt: skip


@router.get("/cases/{purchase_id}")
async def case_page(request: Request, purchase_id: Id, message: str | None = None,
                    principal: Principal = requires("viewer")) -> Response:  # fmt: skip
    state = _state(request)
    async with state.pool.connection(timeout=5) as conn:
        found = await cases.case(conn, purchase_id)
        if found is None:
            return page(request, "error.html", principal, "cases", 404,
                        status=404, message=f"no review case {purchase_id}")  # fmt: skip
        d = await decisions.decision(conn, purchase_id)
        history = await decisions.wallet_history(conn, found["wallet"])
        linked = await decisions.linked_wallets(conn, found["wallet"])
    return page(request, "case.html", principal, "cases", case=found, d=d, history=history,
                linked=linked, message=message, sla_s=state.settings.console.review_sla_s)


async def _redirect_after(target: str, coro) -> Response:
    """Run a form action; back to ``target`` with a message saying how it went."""
    try:
        await coro
        message = "done"
    except NotFound as exc:
        message = f"no {exc.args[0]}"
    except (CaseConflict, TransitionRefused, ValueError) as exc:
        message = str(exc)
    except (DeliveryFailed, TimeoutError) as exc:
        message = f"label not acknowledged by the broker ({exc}); the case stays claimed"
    sep = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{sep}{urlencode({'message': message})}", status_code=303)


@router.post("/cases/{purchase_id}/{action}")
async def case_action(
    request: Request, purchase_id: Id, action: str,
    outcome: Annotated[str, Form()] = "", pattern: Annotated[str, Form(max_length=128)] = "",
    who: Principal = requires("analyst"),
) -> Response:  # fmt: skip
    state, target = _state(request), f"/cases/{purchase_id}"
    if action == "claim":
        return await _redirect_after(target, actions.claim_case(state, who, purchase_id))
    if action == "release":
        return await _redirect_after(target, actions.release_case(state, who, purchase_id))
    if action == "resolve":
        work = actions.resolve_case(state, who, purchase_id, outcome, pattern or None)
        return await _redirect_after(target, work)
    return await _redirect_after(target, _refuse(f"unknown action {action!r}"))


@router.post("/siem/{alert_id}/{action}")
async def alert_action(
    request: Request, alert_id: Id, action: str, note: Annotated[str, Form(max_length=1000)] = "",
    back: Annotated[str, Form(max_length=300)] = "/siem", who: Principal = requires("analyst"),
) -> Response:  # fmt: skip
    target = back if back.startswith("/siem") else "/siem"
    work = actions.alert_transition(_state(request), who, alert_id, action, note or None)
    return await _redirect_after(target, work)


@router.post("/traffic/blocklist")
async def blocklist_action(
    request: Request, action: Annotated[str, Form()], kind: Annotated[str, Form()],
    value: Annotated[str, Form(max_length=128)], ttl_s: Annotated[str, Form(max_length=20)] = "",
    reason: Annotated[str, Form(max_length=200)] = "console", who: Principal = requires("analyst"),
) -> Response:  # fmt: skip
    try:
        ttl = float(ttl_s) if ttl_s.strip() else None
    except ValueError:
        return await _redirect_after("/traffic", _refuse("ttl_s: seconds, a number"))
    work = actions.change_blocklist(_state(request), who, action, kind, value, ttl, reason)
    return await _redirect_after("/traffic", work)


async def _refuse(message: str) -> None:
    raise ValueError(message)
