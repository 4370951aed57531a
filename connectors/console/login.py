"""Signing in and out. The login form is protected from cross-site posting by a double-submit
token (a random cookie that the form must repeat); failures are counted per user name and per
client in Redis and refused with 429 past ``login_failures_per_15min``."""

from __future__ import annotations

import secrets
from urllib.parse import quote

import psycopg
from fastapi import APIRouter, Form, Request
from redis.exceptions import RedisError
from starlette.responses import RedirectResponse, Response

from connectors.console import accounts
from connectors.console.access import CSRF_FIELD, SESSION_COOKIE
from connectors.console.passwords import same
from connectors.console.render import templates
from infra.logsafe import redact_ip
from infra.redis_keys import console_login_failures as failures_key

router = APIRouter(include_in_schema=False)
LOGIN_CSRF_COOKIE = "sentinel_login_csrf"
FAILURE_WINDOW_S = 15 * 60


def _safe_next(target: str | None) -> str:
    """Only a local path: never an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def _login_page(request: Request, status: int, message: str | None, next_url: str) -> Response:
    token = secrets.token_urlsafe(24)
    response = templates.TemplateResponse(
        request, "login.html", {"csrf": token, "message": message, "next": next_url},
        status_code=status,
    )
    secure = request.app.state.console.settings.console.secure_cookies
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                        secure=secure, path="/login")  # fmt: skip
    return response


@router.get("/login")
async def login_form(request: Request, next: str = "/") -> Response:
    return _login_page(request, 200, None, _safe_next(next))


async def _too_many_failures(request: Request, name: str) -> bool:
    state = request.app.state.console
    limit = state.settings.console.login_failures_per_15min
    keys = [failures_key(f"user:{name}"), failures_key(f"ip:{_client(request)}")]
    try:
        counts = await state.redis.mget(keys)
    except RedisError:
        return False  # the limiter is best effort; the password check still holds
    return any(int(c or 0) >= limit for c in counts)


async def _count_failure(request: Request, name: str) -> None:
    redis = request.app.state.console.redis
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for who in (f"user:{name}", f"ip:{_client(request)}"):
                pipe.incr(failures_key(who))
                pipe.expire(failures_key(who), FAILURE_WINDOW_S)
            await pipe.execute()
    except RedisError:
        pass


def _client(request: Request) -> str:
    return redact_ip(request.client.host if request.client else None)


@router.post("/login")
async def login(
    request: Request,
    username: str = Form(""),
    password: str = Form(""),
    csrf_token: str = Form("", alias=CSRF_FIELD),
    next: str = Form("/"),
) -> Response:
    next_url = _safe_next(next)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not csrf_token or not cookie or not same(csrf_token, cookie):
        return _login_page(request, 403, "The form expired or was not sent by this page; try again.", next_url)
    name = username.strip().lower()
    if await _too_many_failures(request, name):
        return _login_page(request, 429, "Too many failed attempts; wait 15 minutes.", next_url)
    state = request.app.state.console
    try:
        async with state.pool.connection(timeout=5) as conn:
            session = await accounts.login(conn, name, password, state.settings.console.session_ttl_s)
    except (psycopg.Error, TimeoutError):
        return _login_page(request, 503, "The user store is unavailable; retry.", next_url)
    if session is None:
        await _count_failure(request, name)
        return _login_page(request, 401, "Wrong user name or password.", next_url)
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        SESSION_COOKIE, session.token, max_age=state.settings.console.session_ttl_s,
        httponly=True, samesite="strict", secure=state.settings.console.secure_cookies,
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    from connectors.console.access import check_csrf

    state = request.app.state.console
    principal = await state.access.authenticate(request)
    token = request.cookies.get(SESSION_COOKIE)
    if principal is not None and token:
        await check_csrf(request, principal)
        async with state.pool.connection(timeout=5) as conn:
            await accounts.logout(conn, token)
        state.access.forget_session(token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


def login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
