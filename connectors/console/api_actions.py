"""Changes through the API: review cases, alerts, blocklists. Sessions must send the CSRF
token (``X-CSRF-Token``); API keys need none. Answers: 200 with the new state, 404, 409 when
the state does not allow the action, 422 for a bad field, 503 when a store or the broker is
unavailable."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Path, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from connectors.base import DeliveryFailed
from connectors.console import actions
from connectors.console.access import requires
from connectors.console.principal import Principal
from connectors.console.queries.cases import CaseConflict
from connectors.console.queries.rows import NotFound
from connectors.console.queries.siem import TransitionRefused
from connectors.console.render import json_answer

router = APIRouter(prefix="/v1", tags=["actions"])
Id = Annotated[str, Path(min_length=1, max_length=132)]


class Resolution(BaseModel):
    outcome: Literal["fraud", "legit"]
    pattern: str | None = Field(None, max_length=128, description="fraud pattern, if known")


class Note(BaseModel):
    note: str | None = Field(None, max_length=1000)


class BlockRequest(BaseModel):
    value: str = Field(min_length=1, max_length=128)
    ttl_s: float | None = Field(None, gt=0, le=365 * 86400, description="None: until removed")
    reason: str = Field("console", max_length=200)


async def run(coro) -> Response:
    """The action's result, or the error it maps to."""
    try:
        return json_answer(None, await coro)
    except NotFound as exc:
        return json_answer(None, {"error": "not_found", "message": f"no {exc.args[0]}"}, 404)
    except (CaseConflict, TransitionRefused) as exc:
        return json_answer(None, {"error": "conflict", "message": str(exc)}, 409)
    except ValueError as exc:
        return json_answer(None, {"error": "validation_failed", "message": str(exc)}, 422)
    except (DeliveryFailed, TimeoutError) as exc:
        return json_answer(None, {"error": "broker_unavailable",
                                  "message": f"label not acknowledged: {exc}"}, 503)  # fmt: skip


@router.post("/cases/{purchase_id}/claim")
async def claim(request: Request, purchase_id: Id, who: Principal = requires("analyst")) -> Response:
    """Take an open case; 409 if someone holds it or it is closed."""
    return await run(actions.claim_case(request.app.state.console, who, purchase_id))


@router.post("/cases/{purchase_id}/release")
async def release(request: Request, purchase_id: Id, who: Principal = requires("analyst")) -> Response:
    """Give back a case you hold."""
    return await run(actions.release_case(request.app.state.console, who, purchase_id))


@router.post("/cases/{purchase_id}/resolve")
async def resolve(
    request: Request, purchase_id: Id, body: Resolution, who: Principal = requires("analyst")
) -> Response:
    """Confirm fraud or clear a case you hold: publishes a MANUAL_REVIEW ``Label`` (with your
    user name as reviewer) and closes the case."""
    state = request.app.state.console
    return await run(actions.resolve_case(state, who, purchase_id, body.outcome, body.pattern))


@router.post("/alerts/{alert_id}/{action}")
async def alert_action(
    request: Request, alert_id: Id, action: Literal["acknowledge", "resolve"],
    body: Annotated[Note | None, Body()] = None, who: Principal = requires("analyst"),
) -> Response:
    """open → acknowledged → resolved, recording who and when."""
    note = body.note if body else None
    return await run(actions.alert_transition(request.app.state.console, who, alert_id, action, note))


@router.post("/blocklist/{kind}")
async def block(
    request: Request, kind: Literal["ip", "wallet"], body: BlockRequest,
    who: Principal = requires("analyst"),
) -> Response:
    """Block an IP or a wallet (with an expiry unless ``ttl_s`` is null)."""
    state = request.app.state.console
    return await run(actions.change_blocklist(state, who, "add", kind, body.value, body.ttl_s, body.reason))


@router.delete("/blocklist/{kind}/{value}")
async def unblock(
    request: Request, kind: Literal["ip", "wallet"], value: Annotated[str, Path(max_length=128)],
    who: Principal = requires("analyst"),
) -> Response:
    """Remove a blocklist entry."""
    return await run(actions.change_blocklist(request.app.state.console, who, "remove", kind, value))
