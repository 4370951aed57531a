"""Console authentication on real PostgreSQL and Redis: passwords, sessions, CSRF, API keys,
roles (IP masking for viewers), the append-only audit log and the per-client wait cap."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import psycopg
import pytest

from connectors.console.app import create_app
from infra.logsafe import redact_ip
from infra.redis_keys import console_login_failures
from infra.settings import ConsoleSettings, Settings, loopback_port
from sinks.testing import decision
from tests.support.console import (
    console_client,
    csrf_of,
    fresh_peer,
    migrated_database,
    sign_in,
    store_decisions,
    user_with_key,
    with_database,
)
from tests.support.http import until_waiting
from tests.support.records import purchase

pytestmark = pytest.mark.integration
IP = "203.0.113.77"


@pytest.fixture(scope="module")
def console_db(stack: Settings):
    with migrated_database(stack) as dsn:
        yield dsn


@pytest.fixture
def dsn(console_db: str) -> str:
    """Most tests here share one migrated database (unique names and ids per test)."""
    return console_db


def _decision_with_ip(n: int) -> tuple[dict, dict]:
    pid = f"p-{uuid.uuid4().hex[:10]}"
    d = decision(n, purchase_id=pid, decision_id=f"dec_{pid}", decision="BLOCKED",
                 reasons=[{"code": "blocklisted_ip", "category": "network", "score": 1.0,
                           "detail": f"IP {IP} is blocklisted"}])  # fmt: skip
    p = purchase(n, purchase_id=pid, occurred_at=d["occurred_at"], wallet=d["wallet"], ip=IP)
    return d, p


def test_password_login_session_and_logout(settings: Settings, dsn: str) -> None:
    settings = with_database(settings, dsn)
    name, password, _ = user_with_key(dsn, "analyst")

    async def scenario():
        async with console_client(settings) as client:
            anonymous = await client.get("/fraud", headers={"accept": "text/html"})
            wrong = await sign_in(client, name, password + "x")
            no_csrf = await client.post("/login", data={"username": name, "password": password})
            ok = await sign_in(client, name, password)
            api = await client.get("/v1/decisions/dec_nothing")
            page = await client.get("/fraud", headers={"accept": "text/html"})
            logout_no_csrf = await client.post("/logout")
            token = csrf_of(page.text)
            logout = await client.post("/logout", data={"csrf_token": token})
            after = await client.get("/v1/decisions/dec_nothing")
            return anonymous, wrong, no_csrf, ok, api, logout_no_csrf, logout, after

    anonymous, wrong, no_csrf, ok, api, logout_no_csrf, logout, after = asyncio.run(scenario())
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
    assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
    assert no_csrf.status_code == 403
    assert ok.status_code == 303 and "sentinel_session" in ok.headers["set-cookie"]
    assert "HttpOnly" in ok.headers["set-cookie"] and "SameSite=strict" in ok.headers["set-cookie"]
    assert api.status_code == 404 and api.json()["error"] == "not_found"
    assert logout_no_csrf.status_code == 403
    assert logout.status_code == 303
    assert after.status_code == 401
    with psycopg.connect(dsn) as conn:
        left = conn.execute("SELECT count(*) FROM console_sessions WHERE user_name = %s", (name,))
        assert left.fetchone() == (0,)


def expire_sessions(dsn: str, name: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE console_sessions SET expires_at = now() - interval '1 s'"
                     " WHERE user_name = %s", (name,))  # fmt: skip


def test_sessions_expire(settings: Settings, dsn: str) -> None:
    settings = with_database(settings, dsn)
    name, password, _ = user_with_key(dsn, "viewer")
    cookies: dict = {}

    async def scenario():
        async with console_client(settings) as client:
            await sign_in(client, name, password)
            before = await client.get("/v1/decisions/dec_x")
            cookies.update(client.cookies)
            await asyncio.to_thread(expire_sessions, dsn, name)
            return before

    before = asyncio.run(scenario())
    assert before.status_code == 404

    async def later(cookies):  # a fresh process: nothing cached
        async with console_client(settings) as client:
            client.cookies.update(cookies)
            return await client.get("/v1/decisions/dec_x")

    assert asyncio.run(later(cookies)).status_code == 401


def test_failed_logins_are_limited(settings: Settings, dsn: str, redis_client) -> None:
    console = ConsoleSettings(login_failures_per_15min=3)
    settings = with_database(settings, dsn).model_copy(update={"console": console})
    name, password, _ = user_with_key(dsn, "viewer")
    peer = fresh_peer()  # failures of its own /24 only (Redis is shared by every run)

    async def scenario():
        async with console_client(settings, peer=peer) as client:
            codes = [(await sign_in(client, name, "wrong-password-x")).status_code for _ in range(3)]
            codes.append((await sign_in(client, name, password)).status_code)
            return codes

    try:
        assert asyncio.run(scenario()) == [401, 401, 401, 429]
    finally:
        redis_client.delete(console_login_failures(f"user:{name}"),
                            console_login_failures(f"ip:{redact_ip(peer)}"))  # fmt: skip


def test_api_keys_roles_and_viewer_ip_masking(settings: Settings, dsn: str) -> None:
    settings = with_database(settings, dsn)
    d, p = _decision_with_ip(1)
    store_decisions(dsn, [d], [p])
    _, _, analyst_key = user_with_key(dsn, "analyst")
    _, _, viewer_key = user_with_key(dsn, "viewer")
    path = f"/v1/decisions/{d['decision_id']}"

    async def scenario():
        async with console_client(settings) as client:
            none = await client.get(path)
            bad = await client.get(path, headers={"Authorization": "Bearer snt_abc_def"})
            analyst = await client.get(path, headers={"Authorization": f"Bearer {analyst_key}"})
            viewer = await client.get(path, headers={"X-API-Key": viewer_key})
            by_wallet = await client.get(
                f"/v1/wallets/{d['wallet']}/decisions", headers={"X-API-Key": viewer_key}
            )
            health = await client.get("/healthz")
            return none, bad, analyst, viewer, by_wallet, health

    none, bad, analyst, viewer, by_wallet, health = asyncio.run(scenario())
    assert (none.status_code, bad.status_code) == (401, 401)
    assert analyst.status_code == 200 and analyst.json()["purchase"]["ip"] == IP
    assert analyst.json()["reasons"][0]["detail"] == f"IP {IP} is blocklisted"
    assert IP not in viewer.text and "203.0.113.0/24" in viewer.text
    assert viewer.json()["features"] == d["features"]
    assert [r["purchase_id"] for r in by_wallet.json()["decisions"]] == [d["purchase_id"]]
    assert health.status_code == 200 and health.json()["status"] == "ok"


def test_waits_are_capped_per_client(settings: Settings, dsn: str) -> None:
    console = ConsoleSettings(waits_per_client=1, max_wait_ms=1500)
    settings = with_database(settings, dsn).model_copy(update={"console": console})
    _, _, key = user_with_key(dsn, "viewer")
    auth = {"Authorization": f"Bearer {key}"}

    async def scenario():
        app = create_app(settings)
        async with console_client(settings, app=app) as client:
            loop = asyncio.get_running_loop()
            started = loop.time()
            first = asyncio.create_task(client.get("/v1/decisions/p-never?wait_ms=30000", headers=auth))
            await until_waiting(app.state.console.waiter)  # it holds the client's one slot
            second = await client.get("/v1/decisions/p-never-2?wait_ms=5000", headers=auth)
            return await first, second, loop.time() - started

    first, second, elapsed = asyncio.run(scenario())
    assert first.status_code == 404 and 1.4 < elapsed < 5  # 30 s asked, capped at 1.5 s
    assert second.status_code == 429 and second.headers["retry-after"] == "1"


def test_audit_log_is_append_only(dsn: str) -> None:
    target = f"p-{uuid.uuid4().hex}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO audit_log (actor, action, target_kind, target_id)"
                     " VALUES ('t', 'case.claim', 'case', %s)", (target,))  # fmt: skip
        for statement in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log",
                          "TRUNCATE audit_log"):  # fmt: skip
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(statement)
        row = conn.execute("SELECT actor FROM audit_log WHERE target_id = %s", (target,))
        assert row.fetchall() == [("t",)]


def test_users_cli_prints_a_generated_password_once_and_audits(env: dict, pg_dsn: str) -> None:
    env = {**env, "POSTGRES_URL": pg_dsn}

    def sentinel(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "infra.cli", *args], env=env, input=stdin,
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    added = sentinel("users", "add", "alice", "--role", "analyst")
    assert added.returncode == 0, added.stderr
    password = added.stdout.split("password ")[1].split()[0]
    assert len(password) >= 20
    again = sentinel("users", "add", "alice", "--role", "viewer")
    assert again.returncode == 1 and "exists" in again.stderr
    short = sentinel("users", "add", "bob", "--role", "viewer", "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "at least 12" in short.stderr
    key = sentinel("users", "key", "alice")
    assert key.returncode == 0 and key.stdout.startswith("snt_")
    first = sentinel("users", "ensure-admin", "--json")
    second = sentinel("users", "ensure-admin", "--json")
    import json

    created, existing = json.loads(first.stdout), json.loads(second.stdout)
    assert created["user"] == "admin" and len(created["password"]) >= 20
    assert created["url"] == f"http://127.0.0.1:{loopback_port(8090)}/"  # the console's port
    assert existing == {**created, "password": None}
    with psycopg.connect(pg_dsn) as conn:
        stored = conn.execute("SELECT password_hash FROM console_users WHERE name = 'alice'").fetchone()
        actions = conn.execute("SELECT action, target_id FROM audit_log ORDER BY audit_id").fetchall()
    assert stored[0].startswith("$argon2id$") and password not in stored[0]
    assert ("user.add", "alice") in actions and ("key.create", "alice") in actions
    assert actions.count(("user.add", "admin")) == 1
