"""The webhook gateway's HTTP surface (FastAPI): routes, lifespan, OpenAPI, ``serve``.

``create_app(settings)`` builds the app; its lifespan starts a ``Publisher`` and a Redis client
and proves both answer. The request pipeline itself is ``connectors.gateway.Gateway``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import orjson
import redis.asyncio as aioredis
from fastapi import FastAPI, Path, Query, Request
from fastapi.openapi.utils import get_openapi
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError
from starlette.responses import Response

from connectors.base import RecordKind
from connectors.console.access import AuthError, open_access, requires
from connectors.console.principal import Principal, for_principal
from connectors.decision_wait import DecisionWaiter, TooManyWaits, WaitSlots
from connectors.gateway import Gateway, error, json_response
from connectors.health import all_ok
from connectors.publisher import DeliveryPump, Publisher
from connectors.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER
from connectors.stopping import stop_tasks
from connectors.validation import AUTH_EVENT, LABEL, PURCHASE
from infra.settings import Settings

# A caller waits this for the broker's acknowledgement, then hears 503; the record itself stays
# with the producer (connectors/publisher.py, RECORD_LIFETIME_MS) and may still arrive.
DELIVERY_TIMEOUT_MS = 5_000
STOP_WITHIN_S = 5.0  # the delivery pump and the auth-failure digest, once cancelled


def create_app(settings: Settings, *, delivery_timeout_ms: int = DELIVERY_TIMEOUT_MS) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway = await start_gateway(settings, delivery_timeout_ms)
        app.state.gateway = gateway
        app.state.access = await open_access(settings.postgres.dsn)
        app.state.waiter = DecisionWaiter.from_url(gateway.redis, settings.redis.dsn)
        app.state.waiter.start()
        app.state.wait_slots = WaitSlots(settings.console.waits_per_client)
        app.state.max_wait_ms = settings.console.max_wait_ms
        try:
            yield
        finally:
            await app.state.waiter.stop()
            await app.state.access.pool.close()
            await stop_gateway(gateway)

    app = FastAPI(title="Sentinel webhook gateway", version="1", lifespan=lifespan)
    for kind in (PURCHASE, AUTH_EVENT, LABEL):
        _add_ingest_route(app, kind)
    _add_read_routes(app)
    app.add_exception_handler(AuthError, auth_error)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


async def auth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthError)
    return error(exc.status, exc.code, exc.message)


def app_from_env() -> FastAPI:
    """The app for ``uvicorn --factory connectors.webhook:app_from_env`` (settings from env)."""
    from infra.settings import get_settings

    return create_app(get_settings())


async def start_gateway(settings: Settings, delivery_timeout_ms: int) -> Gateway:
    timeout = settings.webhook.redis_timeout_s
    client = aioredis.from_url(
        settings.redis.dsn, socket_timeout=timeout, socket_connect_timeout=timeout
    )
    await client.ping()
    publisher = Publisher(
        settings,
        delivery_timeout_ms=delivery_timeout_ms,
        poll_thread=False,
        future_factory=asyncio.get_running_loop().create_future,
        **{"reconnect.backoff.max.ms": 1000, "linger.ms": 2},
    )
    pump = DeliveryPump(publisher)
    deadline_s = delivery_timeout_ms / 1000 + 1.0
    gateway = Gateway(settings, publisher, pump, client, deadline_s)
    gateway.tasks = [asyncio.create_task(pump.run(), name="delivery-pump"),
                     asyncio.create_task(_flush_digest(gateway), name="auth-failure-digest")]
    return gateway


async def _flush_digest(gateway: Gateway) -> None:
    every = min(1.0, gateway.settings.webhook.auth_failure_window_s / 4)
    while True:
        await asyncio.sleep(every)
        gateway.flush_auth_failures()


async def stop_gateway(gateway: Gateway) -> None:
    """Stop the background jobs, send what was accepted, then stop the delivery pump: each
    task has ended before what it uses is closed."""
    await stop_tasks(gateway.tasks[1:], STOP_WITHIN_S)
    gateway.flush_auth_failures(force=True)
    left = await gateway.pump.drain(10.0)
    await stop_tasks(gateway.tasks[:1], STOP_WITHIN_S)
    gateway.publisher.close(0 if left else 1.0)
    await gateway.redis.aclose()


def _add_ingest_route(app: FastAPI, kind: RecordKind) -> None:
    """A plain Starlette route (FastAPI's per-request dependency solving is not needed: the
    gateway reads and validates the body itself); ``_openapi`` documents it."""

    async def ingest(request: Request) -> Response:
        return await request.app.state.gateway.accept(kind, request)

    name = f"post_{kind.name.replace('-', '_')}"
    app.add_route(f"/v1/{kind.name}", ingest, methods=["POST"], name=name, include_in_schema=False)


def _add_read_routes(app: FastAPI) -> None:
    @app.get(
        "/v1/decisions/{purchase_id}",
        responses={
            401: _error_doc("No API key or console session"),
            404: _error_doc("No decision yet"),
            429: _error_doc("This client already holds its share of waits; see Retry-After"),
        },
    )
    async def get_decision(
        request: Request,
        purchase_id: Annotated[str, Path(min_length=1, max_length=128)],
        wait_ms: Annotated[int, Query(ge=0, le=30_000)] = 0,
        principal: Principal = requires("viewer"),
    ) -> Response:
        """The latest decision for a purchase, waiting up to ``wait_ms`` (capped at
        ``SENTINEL_CONSOLE_MAX_WAIT_MS``) for it to exist. Needs an API key
        (``Authorization: Bearer``) or a console session; IPs are masked for viewers."""
        waiter: DecisionWaiter = request.app.state.waiter
        wait_s = min(wait_ms, request.app.state.max_wait_ms) / 1000
        try:
            with request.app.state.wait_slots.hold(principal.client_id):
                raw = await waiter.get(purchase_id, wait_s)
        except TooManyWaits:
            return error(429, "too_many_waits", "too many waits in flight", retry_after=1)
        except RedisError:
            return error(503, "unavailable", "decision store unavailable; retry", retry_after=1)
        if raw is None:
            return error(404, "not_found", f"no decision for {purchase_id!r} yet")
        if principal.masks_ips:
            raw = orjson.dumps(for_principal(principal, orjson.loads(raw)))
        return Response(raw, 200, media_type="application/json")

    @app.get("/livez")
    async def livez() -> Response:
        """The gateway process answers."""
        return json_response(200, {"status": "ok"})

    @app.get("/readyz")
    async def readyz(request: Request) -> Response:
        """It can accept records: Kafka and Redis answer."""
        gateway: Gateway = request.app.state.gateway
        return _health_response(await gateway.health.ready(gateway))

    @app.get("/healthz")
    async def healthz(request: Request) -> Response:
        """The pipeline behind it: Kafka, Redis, PostgreSQL and a live worker."""
        gateway: Gateway = request.app.state.gateway
        return _health_response(await gateway.health.healthy(gateway))

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        registry = request.app.state.gateway.metrics.registry
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _health_response(components: dict[str, Any]) -> Response:
    ok = all_ok(components)
    return json_response(200 if ok else 503, {"status": "ok" if ok else "degraded", **components})


def _error_doc(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_SCHEMA}}}


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "fields": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },  # fmt: skip
    },
}
ACCEPTED_SCHEMA = {
    "type": "object",
    "required": ["id", "status", "topic", "partition", "offset"],
    "properties": {
        "id": {"type": "string"},
        "status": {"type": "string", "enum": ["accepted"]},
        "topic": {"type": "string"},
        "partition": {"type": "integer"},
        "offset": {"type": "integer"},
    },  # fmt: skip
}
RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "Acknowledged by the broker (or the replayed first response)",
        "content": {"application/json": {"schema": ACCEPTED_SCHEMA}},
    },  # fmt: skip
    401: _error_doc("Missing, stale or wrong signature"),
    409: _error_doc("A request with this Idempotency-Key is still in flight"),
    413: _error_doc("Body over 64 KiB"),
    422: _error_doc("Invalid body or Idempotency-Key; `fields` names each bad field"),
    429: _error_doc("Rate limited; see Retry-After"),
    503: _error_doc("Broker or Redis unavailable; nothing was accepted, retry"),
}


def _ingest_doc(kind: RecordKind) -> dict[str, Any]:
    header = {"in": "header", "schema": {"type": "string"}}
    record = kind.model.__name__.removesuffix("In")
    return {
        "summary": f"Publish one {record} to {kind.spec.name}",
        "operationId": f"post_{kind.name.replace('-', '_')}",
        "parameters": [
            {**header, "name": TIMESTAMP_HEADER, "required": True, "description": "Unix seconds"},
            {**header, "name": SIGNATURE_HEADER, "required": True,
             "description": 'hex HMAC-SHA256 of f"{timestamp}.{idempotency_key}.{body}"'
                            " (the key empty when absent)"},
            {**header, "name": "Idempotency-Key", "required": False,
             "description": "signed with the body; 1-255 of A-Z a-z 0-9 _ - :; defaults "
                            "to the record's natural id; kept 24 h"},
        ],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{kind.model.__name__}"}}}},
        "responses": {str(code): doc for code, doc in RESPONSES.items()},
    }  # fmt: skip


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for kind in (PURCHASE, AUTH_EVENT, LABEL):
        model_schema = kind.model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(model_schema.pop("$defs", {}))
        components[kind.model.__name__] = model_schema
        schema["paths"][f"/v1/{kind.name}"] = {"post": _ingest_doc(kind)}
    app.openapi_schema = schema
    return schema
