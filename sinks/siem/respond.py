"""Automated responses to an alert, each recorded with the alert as a ``Response``
(action, target, expires_at, status):

- ``block_ip``: the IP on the blocklist (``sinks.blocklist``) with the rule's expiry;
- ``blacklist_wallet``: the wallet on the blocklist and in PostgreSQL ``blacklisted_wallets``;
- ``lock_account``: ``sentinel:locked:{user_id}`` in Redis (JSON reason, the rule's expiry);
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

from sinks.blocklist import Blocklist
from sinks.postgres import CONNECT_OPTIONS, blacklist_wallets, wrap_postgres_error
from sinks.redis import wrap_redis_error
from sinks.siem.correlate import Alert, Plan

LOCK_KEY = "sentinel:locked:{}"


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
    ):
        self.redis = client
        self.pg_dsn = pg_dsn
        self.webhook = webhook
        self.clock = clock
        self.blocklist = blocklist or Blocklist(client, clock)
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
            expires = self._expiry(plan)
            try:
                status = self._act(alert, plan, expires)
            except ValueError as exc:  # e.g. not an IP address
                status = f"invalid target: {exc}"
            responses.append(_response(plan.action, plan.target or "", expires, status))
        return responses

    def _expiry(self, plan: Plan) -> datetime | None:
        if plan.ttl_ms is None:
            return None
        return datetime.fromtimestamp(self.clock() + plan.ttl_ms / 1000, UTC)

    def _act(self, alert: Alert, plan: Plan, expires: datetime | None) -> str:
        assert plan.target is not None
        ttl_s = None if plan.ttl_ms is None else plan.ttl_ms / 1000
        reason = f"{alert.rule} {alert.alert_id}"
        try:
            if plan.action == "block_ip":
                self.blocklist.add("ip", plan.target, ttl_s, reason)
            elif plan.action == "blacklist_wallet":
                self.blocklist.add("wallet", plan.target, ttl_s, reason)
                self._blacklist_in_postgres(plan.target.lower(), reason, expires)
            elif plan.action == "lock_account":
                self._lock(plan.target, reason, plan.ttl_ms)
        except RedisError as exc:
            raise wrap_redis_error(exc) from exc
        return "done"

    def _lock(self, user_id: str, reason: str, ttl_ms: int | None) -> None:
        value = json.dumps({"reason": reason, "locked_at_ms": int(self.clock() * 1000)})
        self.redis.set(LOCK_KEY.format(user_id), value, px=ttl_ms)

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
