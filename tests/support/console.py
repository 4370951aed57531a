"""Console users and keys for tests (in a test's own migrated database)."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import uuid
from contextlib import asynccontextmanager, contextmanager

import httpx
import psycopg

from connectors.console import accounts
from infra import db
from infra.settings import PostgresSettings, Settings
from tests.support.hangs import bounded


@contextmanager
def migrated_database(stack: Settings):
    """A fresh migrated database for a whole test module (migrating costs seconds: the daily
    partitions), dropped afterwards. Tests sharing it use their own user names and ids."""
    name = f"t_console_{uuid.uuid4().hex[:10]}"
    base = stack.postgres.dsn
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = base.rsplit("/", 1)[0] + f"/{name}"
    try:
        db.migrate(dsn)
        yield dsn
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def with_database(settings: Settings, dsn: str) -> Settings:
    """``settings`` pointing at the test's own database."""
    return settings.model_copy(update={"postgres": PostgresSettings(url=dsn)})


async def _user_and_key(dsn: str, role: str, name: str, password: str | None) -> tuple[str, str]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        password = await accounts.add_user(conn, name, role, password, "test")
        return password, await accounts.create_key(conn, name, "test")


def user_with_key(dsn: str, role: str, name: str | None = None, password: str | None = None):
    """(name, password, api key) of a new user with ``role``."""
    name = name or f"{role}-{uuid.uuid4().hex[:6]}"
    password, key = asyncio.run(_user_and_key(dsn, role, name, password))
    return name, password, key


def fresh_peer() -> str:
    """A client address in a network of its own: a random unique-local IPv6 /48 (RFC 4193,
    40 random bits). The login limiter counts failures per client network (/24, /48) in Redis
    for 15 minutes, and Redis is shared by every run on the machine: with one fixed peer, ten
    runs' wrong passwords within 15 minutes had the next runs' logins refused; with random
    IPv4 /24s (512 of them) a test met an earlier run's failure one run in a dozen."""
    global_id = uuid.uuid4().int & (2**40 - 1)
    return str(ipaddress.IPv6Address((0xFD << 120) | (global_id << 80) | 1))


@asynccontextmanager
async def console_client(settings: Settings, peer: str | None = None, app=None):
    """The console app (``app``, else a new one) in-process, lifespan started, behind an
    httpx client keeping cookies, its peer ``peer`` (else a ``fresh_peer``)."""
    from connectors.console.app import create_app

    peer = peer or fresh_peer()
    app = create_app(settings) if app is None else app
    async with bounded("starting the console app", STEP_S):  # a hang fails with its stacks
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
    try:
        transport = httpx.ASGITransport(app=app, client=(peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
            yield client
    finally:
        async with bounded("stopping the console app", STEP_S):
            await lifespan.__aexit__(None, None, None)


STEP_S = 60.0  # starting or stopping the console app in-process takes well under a second
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF_INPUT.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


async def sign_in(client: httpx.AsyncClient, name: str, password: str) -> httpx.Response:
    form = await client.get("/login")
    return await client.post(
        "/login", data={"username": name, "password": password, "csrf_token": csrf_of(form.text)}
    )


def store(dsn: str, *batches: tuple) -> None:
    """Write ``(TopicSpec, records)`` batches through the PostgreSQL sink, as the pipeline
    would (same mapping, same conflict handling, same triggers)."""
    from sinks.postgres import PostgresSink
    from sinks.testing import records

    sink = PostgresSink(dsn, [spec for spec, _ in batches])
    try:
        sink.write([r for spec, values in batches for r in records(spec, list(values))])
    finally:
        sink.close()


def store_decisions(dsn: str, decisions: list[dict], purchases: list[dict] = ()) -> None:
    from infra import topics

    store(dsn, (topics.DECISIONS, decisions), (topics.PURCHASES, purchases))


def refresh_rollups(dsn: str) -> int:
    """What the console's refresher does on its schedule, now."""
    from connectors.console.rollups import refresh_until_clean

    async def run() -> int:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            return await refresh_until_clean(conn)

    return asyncio.run(run())
