"""No raw IP or user id in any log line: the gateway and the SIEM sink run as the commands
operators run (``sentinel gateway``, ``sentinel sink siem``) on a small flow that makes them
log rate limits, failed authentications and alerts about those very IPs and users; then
their logs are searched for the raw values."""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
import redis

from connectors.signature import signed_headers
from infra import redis_keys, topics
from infra.observe import free_port
from infra.secrets import webhook_secrets
from sinks.blocklist import Blocklist
from sinks.siem.escalation import Offences
from sinks.testing import wait_until
from tests.support.kafka import Worker, read_until
from tests.support.records import recent_purchase

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_gateway_and_siem_logs_hold_no_raw_ip_or_user_id(settings, env, pg_dsn, tmp_path):
    n = random.randrange(1, 2**16)
    buyer_ip, attacker_ip = f"198.18.{n >> 8}.{n & 255}", f"198.19.{n >> 8}.{n & 255}"
    user, admin = f"user-{uuid.uuid4().hex}", f"admin-{uuid.uuid4().hex}"
    secret = webhook_secrets(settings)[0]
    port = free_port()
    env = {**env, "POSTGRES_URL": pg_dsn, "WEBHOOK_SECRETS": secret.decode(),
           "WEBHOOK_AUTH_FAILURE_WINDOW_S": "1"}  # fmt: skip
    gateway = Worker(env, tmp_path / "gateway.log",
                     ("-m", "infra.cli", "gateway", "--port", str(port)))  # fmt: skip
    siem = Worker(env, tmp_path / "siem.log", ("-m", "infra.cli", "sink", "siem"))
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            _wait_healthy(client, gateway)
            _flow(client, secret, buyer_ip, attacker_ip, user, admin)
        # the failed authentications' window (1 s) closes and its digest is logged
        wait_until(lambda: gateway.assert_alive() or "auth failures" in _log(gateway), 30,
                   "the gateway's auth failure digest in its log")
        alerts = read_until(settings, topics.ALERTS, lambda ms: len(ms) >= 2, timeout=90,
                            check=siem.assert_alive)  # fmt: skip
        assert len(alerts) == 2
    finally:
        gateway.stop()
        siem.stop()
        _forget(settings, attacker_ip, admin)
    logs = {name: (tmp_path / f"{name}.log").read_text() for name in ("gateway", "siem")}
    assert "rate limit wallet" in logs["gateway"] and "auth failures" in logs["gateway"]
    assert "alert brute_force" in logs["siem"] and "alert admin_mfa_failures" in logs["siem"]
    for name, text in logs.items():
        for raw in (buyer_ip, attacker_ip, user, admin):
            assert raw not in text, f"{raw} in the {name} log"


def _flow(client, secret, buyer_ip, attacker_ip, user, admin) -> None:
    def post(path: str, record: dict, key: bytes = secret) -> int:
        body = orjson.dumps(record)
        return client.post(path, content=body, headers=signed_headers(key, body)).status_code

    now = datetime.now(UTC) - timedelta(minutes=1)
    wallet = f"0x{uuid.uuid4().hex}{0:08x}"
    bought = [post("/v1/purchases", recent_purchase(i, purchase_id=f"p-{uuid.uuid4().hex}",
                                                    ip=buyer_ip, user_id=user, wallet=wallet))
              for i in range(6)]  # fmt: skip
    assert bought == [202] * 5 + [429]  # the 6th: the wallet limit (5 a minute), logged
    auth = [("LOGIN_FAILED", user)] * 5 + [("ADMIN_MFA_FAILED", admin)] * 3
    for i, (kind, who) in enumerate(auth):
        event = {"event_id": f"e-{uuid.uuid4().hex}", "occurred_at": now + timedelta(seconds=i),
                 "kind": kind, "user_id": who, "ip": attacker_ip}  # fmt: skip
        assert post("/v1/auth-events", {**event, "occurred_at": event["occurred_at"].isoformat()}) \
            == 202
    assert [post("/v1/purchases", recent_purchase(9), b"w" * 32) for _ in range(3)] == [401] * 3


def _log(process: Worker) -> str:
    return Path(process.log.name).read_text(errors="replace")


def _wait_healthy(client: httpx.Client, gateway: Worker) -> None:
    deadline = time.monotonic() + 60
    while True:
        gateway.assert_alive()
        try:
            health = client.get("/healthz").json()  # no worker runs: only the gateway's own
            if health["kafka"] and health["redis"]:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, gateway.tail()
        time.sleep(0.2)


def _forget(settings, ip: str, admin: str) -> None:
    client = redis.Redis.from_url(settings.redis.dsn)
    Blocklist(client).remove("ip", ip)
    client.delete(redis_keys.locked(admin))
    Offences(client, 0).forget("ip", ip)
    Offences(client, 0).forget("account", admin)
    client.close()
