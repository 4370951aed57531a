"""Authentication and CSRF for HTTP requests, shared by the console and the gateway's read API.

A request is authenticated by an API key (``Authorization: Bearer snt_…`` or ``X-API-Key``) or
a console session cookie. Answers are cached for ``cache_ttl_s`` per credential (keyed by its
hash) so that a busy reader does not cost a database round trip per request; a revoked key or
ended session is refused at the latest after that time in another process, at once in this one.

Requests with a session cookie that change something must carry the session's CSRF token (form
field ``csrf_token`` or header ``X-CSRF-Token``); API-key requests carry no ambient credential
and need none.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import psycopg
from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool

from connectors.console import accounts
from connectors.console.passwords import same, token_hash
from connectors.console.principal import Principal, Role

SESSION_COOKIE = "sentinel_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CACHE_MAX = 10_000


class AuthError(Exception):
    """401 (who are you?), 403 (not allowed, or no CSRF token) or 503 (store unavailable)."""

    def __init__(self, status: int, code: str, message: str):
        self.status, self.code, self.message = status, code, message
        super().__init__(message)


async def open_access(dsn: str, max_size: int = 4) -> Access:
    """An ``Access`` on a pool that connects in the background: a server that needs users
    starts even while PostgreSQL is away (its requests get 503 until it is back)."""
    pool = AsyncConnectionPool(dsn, min_size=1, max_size=max_size, open=False)
    await pool.open(wait=False)
    return Access(pool)


def presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return request.headers.get("x-api-key") or None


class Access:
    def __init__(self, pool: AsyncConnectionPool, cache_ttl_s: float = 5.0):
        self.pool = pool
        self.cache_ttl_s = cache_ttl_s
        self._cache: OrderedDict[tuple[str, bytes], tuple[float, Principal | None]] = OrderedDict()

    async def authenticate(self, request: Request) -> Principal | None:
        key = presented_key(request)
        if key is not None:
            return await self._lookup("key", key, accounts.principal_for_key)
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            return await self._lookup("session", token, accounts.principal_for_session)
        return None

    def forget_session(self, token: str) -> None:
        self._cache.pop(("session", token_hash(token)), None)

    async def _lookup(
        self, via: str, secret: str,
        find: Callable[[psycopg.AsyncConnection, str], Awaitable[Principal | None]],
    ) -> Principal | None:
        slot = (via, token_hash(secret))
        hit = self._cache.get(slot)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            async with self.pool.connection(timeout=5) as conn:
                principal = await find(conn, secret)
        except (psycopg.Error, TimeoutError) as exc:
            raise AuthError(503, "unavailable", "user store unavailable; retry") from exc
        self._cache[slot] = (now + self.cache_ttl_s, principal)
        self._cache.move_to_end(slot)
        while len(self._cache) > CACHE_MAX:
            self._cache.popitem(last=False)
        return principal


async def check_csrf(request: Request, principal: Principal) -> None:
    if request.method in SAFE_METHODS or principal.via != "session":
        return
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        sent = (await request.form()).get(CSRF_FIELD)
    if not isinstance(sent, str) or not principal.csrf_token or not same(sent, principal.csrf_token):
        raise AuthError(403, "csrf_failed", "missing or wrong CSRF token")


def requires(role: Role = "viewer"):
    """A FastAPI dependency: the request's ``Principal`` with at least ``role``; CSRF checked
    for session requests that change something."""

    async def dependency(request: Request) -> Principal:
        access: Access = request.app.state.access
        principal = await access.authenticate(request)
        if principal is None:
            raise AuthError(401, "unauthorized", "an API key or a console session is required")
        if not principal.can(role):
            raise AuthError(403, "forbidden", f"needs the {role} role")
        await check_csrf(request, principal)
        request.state.principal = principal
        return principal

    return Depends(dependency)
