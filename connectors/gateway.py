"""The webhook request pipeline: read, authenticate, validate, admit, produce, answer.

``Gateway.accept`` is everything a ``POST /v1/<kind>`` does, in order, each step with its own
answer: body over 64 KiB → 413; bad or stale signature → 401 and a ``webhook_auth_failed``
security event; invalid record → 422 naming each field; rate limit → 429 with ``Retry-After``
and a ``rate_limit_exceeded`` event; repeat of an idempotency key → the first response;
otherwise the record is produced and the answer is 202 once the broker acknowledged it, or
503 if it did not within the delivery timeout. Redis not answering within
``WEBHOOK_REDIS_TIMEOUT_S`` → 503; more than ``WEBHOOK_MAX_IN_FLIGHT`` requests in flight →
503 at once (both with ``Retry-After``). No scoring happens here.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from connectors.abuse import FailureDigest, FailureLimiter
from connectors.base import DeliveryFailed, RateLimited, RecordKind, ValidationFailed
from connectors.health import Health
from connectors.idempotency import IdempotencyStore, InFlight, KeyReused, StoredResponse
from connectors.idempotency import record_digest as digest_of
from connectors.metrics import GatewayMetrics
from connectors.publisher import DeliveryPump, Publisher
from connectors.ratelimit import Admission, Duplicate, Limit
from connectors.redis_batch import RedisBatcher
from connectors.security_events import RATE_LIMIT_EXCEEDED, security_event
from connectors.signature import AuthFailed, verify
from connectors.validation import PURCHASE, limit_key, parse
from infra import redis_keys
from infra.logsafe import redact_ip
from infra.secrets import webhook_secrets
from infra.settings import Settings

MAX_BODY = 64 * 1024
# Signed as f"{timestamp}.{key}.{body}": no "." in a key, so the text splits one way only.
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_:\-]{1,255}")
log = logging.getLogger("sentinel.gateway")


class BodyTooLarge(Exception):
    pass


def json_response(status: int, body: dict[str, Any], **headers: str) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def error(status: int, code: str, message: str, **extra: Any) -> Response:
    headers = {"Retry-After": str(extra.pop("retry_after"))} if "retry_after" in extra else {}
    return json_response(status, {"error": code, "message": message, **extra}, **headers)


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class Gateway:
    """One per app: owns the publisher, the Redis client and the metrics."""

    def __init__(
        self,
        settings: Settings,
        publisher: Publisher,
        pump: DeliveryPump,
        redis: Redis,
        deadline_s: float,
    ):
        self.settings = settings
        self.publisher = publisher
        self.pump = pump
        self.tasks: list[asyncio.Task] = []  # the delivery pump, then background jobs
        self.redis = redis
        self.deadline_s = deadline_s
        self.namespace = redis_keys.namespace(settings.kafka.topic_prefix)
        batcher = RedisBatcher(redis)
        self.admission = Admission(batcher)
        self.idempotency = IdempotencyStore(batcher, self.namespace)
        self.metrics = GatewayMetrics()
        self.in_flight = 0
        self.health = Health(settings)
        self._secrets = webhook_secrets(settings)
        self.auth_failures = FailureLimiter(settings.webhook.preauth_failures_per_min)
        self.digest = FailureDigest(settings.webhook.auth_failure_window_s)

    async def accept(self, kind: RecordKind, request: Request) -> Response:
        started = time.perf_counter()
        if self.in_flight >= self.settings.webhook.max_in_flight:
            response = error(503, "overloaded", "too many requests in flight; retry", retry_after=1)
        else:
            self.in_flight += 1
            try:
                response = await self._accept(kind, request)
            finally:
                self.in_flight -= 1
        self.metrics.observe(kind.name, response.status_code, time.perf_counter() - started)
        return response

    async def _accept(self, kind: RecordKind, request: Request) -> Response:
        peer = request.client.host if request.client else None
        source = limit_key(peer)
        if (wait := self.auth_failures.retry_after(source)) is not None:
            self.digest.refused(source)
            message = "too many failed authentications from this address; retry later"
            return error(429, "auth_failures", message, retry_after=wait)
        try:
            body = await read_body(request)
        except BodyTooLarge:
            return error(413, "body_too_large", f"request bodies are limited to {MAX_BODY} bytes")
        try:
            verify(request.headers, body, self._secrets, self.settings.webhook.tolerance_s)
        except AuthFailed as exc:
            return self._unauthorized(kind, source, exc)
        now = datetime.now(UTC)
        try:
            record = parse(kind, body, now, self.publisher.bounds)
        except ValidationFailed as exc:
            return error(
                422, "validation_failed", str(exc), fields=[e.as_dict() for e in exc.errors]
            )
        header = request.headers.get("idempotency-key")
        if header is not None and not IDEMPOTENCY_KEY.fullmatch(header):
            message = "1 to 255 characters of A-Z a-z 0-9 _ - :"
            field = {"field": "Idempotency-Key", "message": message, "type": "header"}
            return error(422, "validation_failed", "bad Idempotency-Key", fields=[field])
        return await self._admit(kind, record, peer, header or kind.natural_key(record), now)

    async def _admit(
        self, kind: RecordKind, record: Any, peer: str | None, idem: str, now: datetime
    ) -> Response:
        key, digest = self.idempotency.key(kind.name, idem), digest_of(record)
        claim = IdempotencyStore.claim(digest)
        deadline = time.monotonic() + self.deadline_s
        try:
            limits = self._limits(kind, record)
            async with asyncio.timeout(self.settings.webhook.redis_timeout_s):
                outcome = await self.admission.admit(key, claim, limits, uuid.uuid4().hex)
            if isinstance(outcome, Duplicate):
                stored = await self.idempotency.resolve(key, outcome.stored, digest, deadline)
                return json_response(stored.status, stored.body, **{"Idempotent-Replayed": "true"})
        except RateLimited as exc:
            return self._rate_limited(kind, record, peer, exc)
        except KeyReused as exc:
            field = {"field": "Idempotency-Key", "message": str(exc), "type": "reused"}
            return error(422, "validation_failed", str(exc), fields=[field])
        except InFlight as exc:
            return error(409, "in_flight", str(exc), retry_after=1)
        except (RedisError, TimeoutError) as exc:
            log.error("redis unavailable during admission: %r", exc)
            return error(503, "unavailable", "rate limiter unavailable; retry", retry_after=1)
        return await self._publish(kind, record, now, key, digest, claim)

    async def _publish(
        self, kind: RecordKind, record: Any, now: datetime, key: str, digest: str, claim: bytes
    ) -> Response:
        try:
            future = self.publisher.send(kind, record, now=now)
            self.pump.kick()
            async with asyncio.timeout(self.deadline_s):
                delivery = await future
        except (DeliveryFailed, TimeoutError, ValidationFailed) as exc:
            await self._release(key, claim)
            if isinstance(exc, ValidationFailed):
                return error(
                    422, "validation_failed", str(exc), fields=[e.as_dict() for e in exc.errors]
                )
            self.metrics.delivery_failures.labels(kind.name).inc()
            log.warning("%s %s not acknowledged: %s", kind.name, kind.record_id(record), exc)
            return error(503, "broker_unavailable", "record not acknowledged; retry", retry_after=1)
        body = {"id": delivery.record_id, "status": "accepted", "topic": delivery.topic,
                "partition": delivery.partition, "offset": delivery.offset}  # fmt: skip
        try:
            await self.idempotency.finish(key, digest, StoredResponse(202, body))
        except RedisError as exc:  # the claim expires; a retry may republish (deduped downstream)
            log.error("could not store the response of %s: %r", delivery.record_id, exc)
        return json_response(202, body)

    async def _release(self, key: str, claim: bytes) -> None:
        try:
            await self.idempotency.release(key, claim)
        except RedisError as exc:  # the claim expires by itself
            log.error("could not release an idempotency claim: %r", exc)

    def _limits(self, kind: RecordKind, record: Any) -> list[Limit]:
        """Per source IP (the buyer's, from the record; labels have none), wallet, global."""
        hook, ns = self.settings.webhook, self.namespace
        limits = []
        ip = getattr(record, "ip", None)
        if ip:  # IPv6 per /64: a client holds a whole /64 and could rotate through it
            key = redis_keys.rate_limit(ns, "ip", limit_key(ip))
            limits.append(Limit("ip", key, hook.rate_per_ip_per_min))
        if kind is PURCHASE:
            wallet_key = redis_keys.rate_limit(ns, "wallet", record.wallet)
            limits.append(Limit("wallet", wallet_key, hook.rate_per_wallet_per_min))
        limits.append(Limit("global", redis_keys.rate_limit(ns, "global"), hook.rate_global_per_min))
        return limits

    def _unauthorized(self, kind: RecordKind, source: str, exc: AuthFailed) -> Response:
        """401; counted against the source and in this window's digest (no event per 401)."""
        self.auth_failures.failed(source)
        self.digest.failed(source, exc.reason, kind.name)
        return error(401, "unauthorized", str(exc))

    def flush_auth_failures(self, force: bool = False) -> None:
        """Publish the digest's events once its window is over (``force``: now)."""
        events = self.digest.due(force)
        for event in events:
            self._emit(event)
        if events:
            failures = sum(int(e["details"]["count"]) for e in events)
            log.warning("auth failures: %d from %d sources in the last window",
                        failures, len(events))  # fmt: skip

    def _rate_limited(
        self, kind: RecordKind, record: Any, peer: str | None, exc: RateLimited
    ) -> Response:
        ip = getattr(record, "ip", None) or peer
        wallet = getattr(record, "wallet", None)
        log.info("rate limit %s on %s from %s", exc.limit, kind.name, redact_ip(ip))
        # details.limit is what the limit was keyed on: ip, wallet or global. A global refusal
        # names no IP or wallet: it says nothing about this buyer, who must not be blocked.
        details = {"limit": exc.limit, "endpoint": kind.name, "retry_after_s": exc.retry_after_s}
        if exc.limit == "global":
            ip = wallet = None
        event = security_event(RATE_LIMIT_EXCEEDED, "LOW", ip=ip, wallet=wallet, details=details)
        self._emit(event)
        return error(429, "rate_limited", str(exc), limit=exc.limit, retry_after=exc.retry_after_s)

    def _emit(self, event: dict[str, Any]) -> None:
        """Produce a security event without holding up the answer; failures are logged."""
        self.metrics.security_events.labels(event["kind"]).inc()
        future = self.publisher.publish_security_event(event)
        self.pump.kick()
        future.add_done_callback(_log_failure)


def _log_failure(future: Any) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("security event not delivered: %s", future.exception())
