"""The console as a person uses it, in headless Chromium (Debian's ``chromium`` driven by PyPI
``playwright``; no browser is ever downloaded), against the running pipeline: gateway, worker,
sinks and console as processes on the embedded stack, fed a simulated burst through the signed
gateway. Each section must show what PostgreSQL holds; a decision opens; a review case is
resolved and its label is found on the topic and its audit row in the table; an alert is
acknowledged; a wrong password and a form without its CSRF token are refused. Screenshots of
each section go to ``out/console/``.

Without Chromium this test FAILS (it does not skip): the bootstrap installs ``chromium``.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import redis

from connectors.console.browser import CHROMIUM, MISSING, launch, sign_in
from connectors.gateway_client import post_records
from infra import topics
from infra.observe import free_port
from infra.settings import REPO_ROOT, Settings
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from sinks.blocklist import Blocklist
from streams.demo import simulated
from tests.support import story
from tests.support.console import user_with_key
from tests.support.kafka import read_until
from tests.support.pipeline import running

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SHOTS = REPO_ROOT / "out" / "console"
ATTACKER = "198.51.100.66"


def _failed_logins(now: datetime) -> list[tuple[str, dict]]:
    """Six failed logins from one IP within a minute: the SIEM's brute_force rule fires."""
    return [("auth", {"event_id": f"bf-{uuid.uuid4().hex}", "occurred_at": (now - timedelta(seconds=60 - 5 * i)).isoformat(),
                      "kind": "LOGIN_FAILED", "user_id": "victim-1", "ip": ATTACKER})
            for i in range(6)]  # fmt: skip


def _impossible_trip(now: datetime) -> list[tuple[str, dict]]:
    """Berlin, then New York 20 minutes later: the scripted story's MANUAL_REVIEW
    (tests/support/story.py, travel-1 and travel-2), so the review queue has a case whatever
    the simulated burst decided."""
    wallet, tag = f"0x{uuid.uuid4().int % 16**40:040x}", uuid.uuid4().hex[:8]
    return [("purchase", story._purchase(f"trip-{tag}-1", wallet, now - timedelta(minutes=50))),
            ("purchase", story._purchase(f"trip-{tag}-2", wallet, now - timedelta(minutes=30),
                                         geo=story.NEW_YORK, ip="24.0.0.1"))]  # fmt: skip


def _in_thread(coro):
    """Run a coroutine to the end in a thread of its own (Playwright's sync API owns this
    thread's event loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _jsonable(records: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    def plain(value):
        return value.isoformat() if isinstance(value, datetime) else value

    return [(kind, {k: plain(v) for k, v in record.items()}) for kind, record in records]


def _sql(dsn: str, query: str, params=()) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


def _wait(what: str, condition, timeout: float, check=None):
    deadline = time.monotonic() + timeout
    while True:
        if check:
            check()
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {value!r})")
        time.sleep(1.0)


@pytest.fixture
def browser():
    assert CHROMIUM.exists(), MISSING
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = launch(pw)
        try:
            yield instance
        finally:
            instance.close()


def test_console_in_a_browser(browser, settings: Settings, env: dict, pg_dsn: str, tmp_path: Path) -> None:
    ports = {"WEBHOOK_PORT": free_port(), "SENTINEL_CONSOLE_PORT": free_port()}
    secret = secrets.token_urlsafe(32)
    env = {**env, "POSTGRES_URL": pg_dsn, "WEBHOOK_SECRETS": secret, "SENTINEL_CONSOLE_ROLLUP_REFRESH_S": "1",
           "SENTINEL_DATA_DIR": str(tmp_path / "data"), **{k: str(v) for k, v in ports.items()}}  # fmt: skip
    gateway, console = (f"http://127.0.0.1:{ports[k]}" for k in ("WEBHOOK_PORT", "SENTINEL_CONSOLE_PORT"))
    with ThreadPoolExecutor(1) as pool:
        name, password, _ = pool.submit(user_with_key, pg_dsn, "analyst", "alice").result()
    with running(env, tmp_path / "logs") as pipeline:
        pipeline.wait_http("gateway", f"{gateway}/livez")
        pipeline.wait_http("console", f"{console}/healthz")
        pipeline.wait_group(settings, env["SENTINEL_APP_ID"])
        now = datetime.now(UTC)
        burst = _jsonable(simulated(200, seed=4242) + _impossible_trip(now)) + _failed_logins(now)
        sent = _in_thread(post_records(gateway, secret.encode(), burst))
        accepted = sent.accepted.get("purchase", [])
        assert len(accepted) > 150, sent.errors
        _wait("decisions of the burst in PostgreSQL",
              lambda: _sql(pg_dsn, "SELECT count(*) FROM decisions WHERE purchase_id = ANY(%s)", (accepted,))[0][0]
              >= len(accepted), 240, pipeline.check_alive)  # fmt: skip
        _wait("the brute_force alert", lambda: _sql(pg_dsn, "SELECT alert_id FROM alerts WHERE rule = 'brute_force'"),
              120, pipeline.check_alive)  # fmt: skip
        try:
            _walk_the_console(browser, console, settings, pg_dsn, name, password, env["SENTINEL_APP_ID"])
        finally:  # the SIEM blocked the attacker's IP in the shared blocklist for an hour
            blocklist = Blocklist(redis.Redis.from_url(settings.redis.dsn))
            blocklist.remove("ip", ATTACKER)
            blocklist.client.close()


def _walk_the_console(browser, console: str, settings: Settings, dsn: str, name: str, password: str,
                      app_id: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)
    _refused_logins(page, console, name, password)
    sign_in(page, console, name, password)
    _kpis(page, console, dsn)
    _fraud_and_decision(page, console, dsn)
    _traffic(page, console, dsn)
    _system(page, console, app_id)
    _siem(page, console, dsn, name)
    _review(page, console, settings, dsn, name)
    _model(page, console, dsn)


def _refused_logins(page, console: str, name: str, password: str) -> None:
    page.goto(f"{console}/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password + "-wrong")
    with page.expect_response(f"{console}/login") as wrong:
        page.click("button[type=submit]")
    assert wrong.value.status == 401 and "Wrong user name or password" in page.content()
    page.goto(f"{console}/login")
    page.evaluate("document.querySelector('input[name=csrf_token]').remove()")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    with page.expect_response(f"{console}/login") as forged:
        page.click("button[type=submit]")
    assert forged.value.status == 403 and "sentinel_session" not in str(page.context.cookies())


def _kpi(page, key: str) -> str:
    return page.get_attribute(f'[data-kpi="{key}"]', "data-value")


def _kpis(page, console: str, dsn: str) -> None:
    def shown_equals_stored() -> bool:
        page.goto(f"{console}/")
        live = page.locator("[data-live=kpis]")
        start, end = live.get_attribute("data-window-start"), live.get_attribute("data-window-end")
        stored = dict(_sql(dsn, "SELECT decision, count(*) FROM decisions WHERE occurred_at >= %s"
                                " AND occurred_at < %s GROUP BY 1", (start, end)))  # fmt: skip
        (purchases,), = _sql(dsn, "SELECT count(*) FROM purchases WHERE occurred_at >= %s AND occurred_at < %s",
                             (start, end))  # fmt: skip
        total = sum(stored.values())
        return (int(_kpi(page, "decisions")) == total and int(_kpi(page, "purchases")) == purchases
                and all(float(_kpi(page, f"share.{v}")) == pytest.approx(n / total) for v, n in stored.items()))

    _wait("KPIs equal to PostgreSQL", shown_equals_stored, 60)
    assert page.locator("[data-chart] canvas").count() >= 3  # uPlot drew the charts
    page.screenshot(path=SHOTS / "kpis.png", full_page=True)


def _fraud_and_decision(page, console: str, dsn: str) -> None:
    page.goto(f"{console}/fraud")
    newest = _sql(dsn, "SELECT decision_id FROM decisions WHERE decision IN ('MANUAL_REVIEW', 'BLOCKED')"
                       " ORDER BY occurred_at DESC LIMIT 1")  # fmt: skip
    first = page.locator("tr[data-decision]").first
    assert first.get_attribute("data-decision") == newest[0][0]
    page.screenshot(path=SHOTS / "fraud.png", full_page=True)
    first.locator("a").click()
    page.wait_for_url(f"{console}/decisions/{newest[0][0]}")
    assert newest[0][0] in page.inner_text("h1")
    assert "Features" in page.content() and page.locator("text=Wallet history").count() == 1
    page.screenshot(path=SHOTS / "decision.png", full_page=True)


def _traffic(page, console: str, dsn: str) -> None:
    page.goto(f"{console}/traffic")
    assert page.get_attribute("[data-gateway]", "data-gateway") == "up"
    (refusals,), = _sql(dsn, "SELECT count(*) FROM security_events WHERE kind IN"
                             " ('rate_limit_exceeded', 'webhook_auth_failed') AND occurred_at >= now() - interval '1 hour'")  # fmt: skip
    assert int(_kpi(page, "refusals.total")) == refusals
    page.screenshot(path=SHOTS / "traffic.png", full_page=True)


def _system(page, console: str, app_id: str) -> None:
    page.goto(f"{console}/system")
    assert page.get_attribute('[data-service="worker"]', "data-status") == "up"
    assert page.get_attribute('[data-service="postgres"]', "data-status") == "up"
    assert page.locator(f'tr[data-group="{app_id}"]').count() == 1
    page.screenshot(path=SHOTS / "system.png", full_page=True)


def _siem(page, console: str, dsn: str, name: str) -> None:
    (alert_id,), = _sql(dsn, "SELECT alert_id FROM alerts WHERE rule = 'brute_force' LIMIT 1")
    page.goto(f"{console}/siem?severity=HIGH")
    (high,), = _sql(dsn, "SELECT count(*) FROM alerts WHERE severity IN ('HIGH', 'CRITICAL')")
    assert page.locator("tr[data-alert]").count() == high
    row = page.locator(f'tr[data-alert="{alert_id}"]')
    row.locator("input[name=note]").fill("on it")
    row.locator('button[data-action="acknowledge"]').click()
    page.wait_for_url(f"{console}/siem?severity=HIGH&message=done")
    assert page.get_attribute(f'tr[data-alert="{alert_id}"]', "data-state") == "acknowledged"
    assert name in page.locator(f'tr[data-alert="{alert_id}"]').inner_text()
    page.screenshot(path=SHOTS / "siem.png", full_page=True)
    assert _sql(dsn, "SELECT actor, action FROM audit_log WHERE target_id = %s", (alert_id,)) == [
        (name, "alert.acknowledge")]


def _review(page, console: str, settings: Settings, dsn: str, name: str) -> None:
    page.goto(f"{console}/cases")
    (open_cases,), = _sql(dsn, "SELECT count(*) FROM review_cases WHERE state = 'open'")
    assert open_cases > 0, "the burst made no MANUAL_REVIEW decision"
    assert int(_kpi(page, "cases.open")) == open_cases
    (oldest,), = _sql(dsn, "SELECT purchase_id FROM review_cases WHERE state = 'open' ORDER BY opened_at LIMIT 1")
    assert page.locator("tr[data-case]").first.get_attribute("data-case") == oldest
    page.screenshot(path=SHOTS / "cases.png", full_page=True)
    page.locator("tr[data-case]").first.locator("a").click()
    page.click('button[data-action="claim"]')
    page.wait_for_selector('button[data-action="confirm-fraud"]')
    page.click('button[data-action="confirm-fraud"]')
    page.wait_for_selector('[data-outcome="fraud"]')
    page.screenshot(path=SHOTS / "case.png", full_page=True)
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.LABELS)
    messages = read_until(settings, topics.LABELS, lambda ms: any(m.key() == oldest.encode() for m in ms), 30)
    label = next(codec.decode(m.value()) for m in messages if m.key() == oldest.encode())
    assert (label["source"], label["reviewer"], label["is_fraud"]) == ("MANUAL_REVIEW", name, True)
    assert [a for _, a in _sql(dsn, "SELECT actor, action FROM audit_log WHERE target_id = %s ORDER BY audit_id",
                                (oldest,))] == ["case.claim", "case.resolve"]  # fmt: skip


def _model(page, console: str, dsn: str) -> None:
    def labels_shown() -> bool:
        page.goto(f"{console}/model")
        (stored,), = _sql(dsn, "SELECT count(*) FROM labels WHERE occurred_at >= date_trunc('minute', now()) - interval '24 hours'")
        return stored >= 1 and int(page.get_attribute('[data-window="24h"]', "data-labels")) == stored

    _wait("the review's label in Model health", labels_shown, 60)
    page.screenshot(path=SHOTS / "model.png", full_page=True)

