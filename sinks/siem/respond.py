"""Automated responses to an alert, each recorded with the alert as a ``Response``
(action, target, expires_at, status). Every block, blacklist and lock expires: it lasts the
rule's ttl for a target's first offence and longer for a repeat offender
(``sinks.siem.escalation``), never for good (a permanent entry is an operator's decision):

- ``block_ip``: the IP on the blocklist (``sinks.blocklist``);
- ``blacklist_wallet``: the wallet on the blocklist and in PostgreSQL ``blacklisted_wallets``;
- ``lock_account``: ``sentinel:locked:{user_id}`` in Redis (JSON reason);
- ``notify``: the alert POSTed as JSON to ``SIEM_WEBHOOK_URL`` (``Idempotency-Key``: the
  alert id); ``skipped`` when no URL is set, ``failed: ...`` when the hook fails (a webhook
  outage never holds the pipeline back).

Every action is idempotent (a repeat refreshes the expiry). Redis or PostgreSQL being down
raises a retryable ``SinkUnavailableError`` subclass: the SIEM sink retries the whole batch.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import psycopg
import redis
from redis.exceptions import RedisError

from infra import redis_keys
from sinks.blocklist import Blocklist, normalise
from sinks.postgres import CONNECT_OPTIONS, blacklist_wallets, wrap_postgres_error
from sinks.redis import wrap_redis_error
from sinks.siem.correlate import Alert, Plan
from sinks.siem.escalation import Offences, RepeatPolicy

TARGET_KIND = {"block_ip": "ip", "blacklist_wallet": "wallet", "lock_account": "account"}


class Webhook:
    def __init__(self, url: str, timeout_s: float = 2.0):
        self.url = url
        self.client = httpx.Client(timeout=timeout_s)

    def post(self, alert: dict) -> str:
        try:
            response = self.client.post(
                self.url,
                content=json.dumps(alert, default=_json_default),
                headers={"Content-Type": "application/json", "Idempotency-Key": alert["alert_id"]},
            )
        except httpx.HTTPError as exc:
            return f"failed: {type(exc).__name__}"
        return "done" if response.is_success else f"failed: HTTP {response.status_code}"

    def close(self) -> None:
        self.client.close()


def _json_default(value):
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


class Responder:
    def __init__(
        self,
        client: redis.Redis,
        pg_dsn: str,
        webhook: Webhook | None = None,
        clock: Callable[[], float] = time.time,
        blocklist: Blocklist | None = None,
        policy: RepeatPolicy | None = None,
    ):
        self.redis = client
        self.pg_dsn = pg_dsn
        self.webhook = webhook
        self.clock = clock
        self.blocklist = blocklist or Blocklist(client, clock)
        self.policy = policy or RepeatPolicy()
        self.offences = Offences(client, self.policy.memory_ms, clock)
        self._pg: psycopg.Connection | None = None

    def setup(self) -> None:
        try:
            self.redis.ping()
        except RedisError as exc:
            raise wrap_redis_error(exc) from exc
        self._connection().execute("SELECT 1")

    def close(self) -> None:
        self._drop_connection()
        if self.webhook is not None:
            self.webhook.close()

    def execute(self, alert: Alert, record: dict) -> list[dict]:
        """Carry out the alert's plans; ``record`` (the Alert record) is what gets notified."""
        responses = []
        for plan in alert.plans:
            if plan.action == "notify":
                responses.append(self._notify(record))
                continue
            try:
                status, expires = self._act(alert, plan)
            except ValueError as exc:  # e.g. not an IP address
                status, expires = f"invalid target: {exc}", None
            responses.append(_response(plan.action, plan.target or "", expires, status))
        return responses

    def _act(self, alert: Alert, plan: Plan) -> tuple[str, datetime]:
        """Carry out one plan for as long as the target's offences say; returns its expiry."""
        assert plan.target is not None
        kind = TARGET_KIND[plan.action]
        target = plan.target if kind == "account" else normalise(kind, plan.target)
        reason = f"{alert.rule} {alert.alert_id}"
        try:
            offences = self.offences.record(kind, target, alert.alert_id)
            ttl_ms = self.policy.ttl_ms(plan.ttl_ms, offences)
            expires = datetime.fromtimestamp(self.clock() + ttl_ms / 1000, UTC)
            reason = f"{reason} (offence {offences})"
            if kind == "account":
                self._lock(target, reason, ttl_ms)
            else:
                self.blocklist.add(kind, target, ttl_ms / 1000, reason)
            if kind == "wallet":
                self._blacklist_in_postgres(target, reason, expires)
        except RedisError as exc:
            raise wrap_redis_error(exc) from exc
        return "done", expires

    def _lock(self, user_id: str, reason: str, ttl_ms: int) -> None:
        value = json.dumps({"reason": reason, "locked_at_ms": int(self.clock() * 1000)})
        self.redis.set(redis_keys.locked(user_id), value, px=ttl_ms)

    def _blacklist_in_postgres(self, wallet: str, reason: str, expires: datetime | None) -> None:
        try:
            conn = self._connection()
            with conn.transaction():
                blacklist_wallets(conn, [wallet], reason, "siem", expires)
        except psycopg.Error as exc:
            self._drop_connection()
            raise wrap_postgres_error(exc) from exc

    def _notify(self, record: dict) -> dict:
        if self.webhook is None:
            return _response("notify", "", None, "skipped: no SIEM_WEBHOOK_URL")
        return _response("notify", self.webhook.url, None, self.webhook.post(record))

    def _connection(self) -> psycopg.Connection:
        if self._pg is None or self._pg.closed:
            try:
                self._pg = psycopg.connect(self.pg_dsn, autocommit=True, **CONNECT_OPTIONS)
            except psycopg.Error as exc:
                raise wrap_postgres_error(exc) from exc
        return self._pg

    def _drop_connection(self) -> None:
        if self._pg is not None:
            self._pg.close()
            self._pg = None


def _response(action: str, target: str, expires: datetime | None, status: str) -> dict:
    return {"action": action, "target": target, "expires_at": expires, "status": status}
