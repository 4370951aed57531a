"""The console app (FastAPI): HTML sections, the JSON API under /v1/, static files, /healthz.

``create_app(settings)`` builds it; its lifespan opens a ``ConsoleState`` (PostgreSQL pool,
Redis, decision waiter) and starts the rollup refresher. Unauthenticated HTML requests are
sent to /login; API requests get a JSON 401.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from redis.exceptions import RedisError
from starlette.responses import Response

from connectors.console import api, api_actions, login, pages
from connectors.console.access import AuthError
from connectors.console.render import HERE, json_answer, templates
from connectors.console.state import ConsoleState
from infra.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await ConsoleState.open(settings)
        app.state.console = state
        app.state.access = state.access
        state.start_background()
        try:
            yield
        finally:
            await state.close()

    app = FastAPI(title="Sentinel console", version="1", lifespan=lifespan,
                  docs_url="/docs", redoc_url=None)  # fmt: skip
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(login.router)
    app.include_router(api.router)
    app.include_router(api_actions.router)
    app.include_router(pages.router)
    app.add_exception_handler(AuthError, _auth_error)
    app.add_exception_handler(psycopg.OperationalError, _store_unavailable)
    app.add_exception_handler(RedisError, _store_unavailable)

    @app.get("/healthz", tags=["health"])
    async def healthz(request: Request) -> Response:
        """Open to all: PostgreSQL and Redis answer."""
        state: ConsoleState = request.app.state.console
        checks = {"postgres": False, "redis": False}
        try:
            async with state.pool.connection(timeout=2) as conn:
                await conn.execute("SELECT 1")
            checks["postgres"] = True
        except Exception:  # noqa: BLE001 - any failure is "down"
            pass
        try:
            checks["redis"] = bool(await state.redis.ping())
        except RedisError:
            pass
        ok = all(checks.values())
        return json_answer(None, {"status": "ok" if ok else "degraded", **checks}, 200 if ok else 503)

    return app


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/v1/") and "text/html" in request.headers.get("accept", "")


async def _auth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthError)
    if _wants_html(request):
        if exc.status == 401:
            return login.login_redirect(request)
        return templates.TemplateResponse(
            request, "error.html", {"status": exc.status, "message": exc.message},
            status_code=exc.status,
        )
    return json_answer(None, {"error": exc.code, "message": exc.message}, exc.status)


async def _store_unavailable(request: Request, exc: Exception) -> Response:
    message = f"a store is unavailable ({type(exc).__name__}); retry"
    if _wants_html(request):
        return templates.TemplateResponse(
            request, "error.html", {"status": 503, "message": message}, status_code=503,
            headers={"Retry-After": "1"},
        )
    response = json_answer(None, {"error": "unavailable", "message": message}, 503)
    response.headers["Retry-After"] = "1"
    return response
