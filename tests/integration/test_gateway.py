"""The webhook gateway on real Kafka and Redis: every answer it can give, and what it publishes.

The app runs in-process (httpx ``ASGITransport``, lifespan started by hand) against the
session's broker and Redis; each test has its own topics and Redis namespace (topic prefix).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest

from connectors.bench_server import topic_records
from connectors.signature import signed_headers
from connectors.webhook import create_app
from infra import redis_keys
from infra.secrets import webhook_secrets
from infra.settings import Settings, WebhookSettings
from infra.topics import AUTH_EVENTS, LABELS, PURCHASES, SECURITY_EVENTS, TopicSpec
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from tests.support.console import user_with_key, with_database
from tests.support.http import until_waiting
from tests.support.kafka import read_until
from tests.support.records import recent_purchase

pytestmark = pytest.mark.integration
PEER = "198.51.100.7"


@asynccontextmanager
async def gateway_client(settings: Settings, **app_kw) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(create_app(settings, **app_kw)) as client:
        yield client


@asynccontextmanager
async def app_client(app) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``app`` in-process, its lifespan started (the test keeps the app)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(PEER, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


async def post(
    client: httpx.AsyncClient, path: str, record: dict | bytes, settings: Settings, **kw
) -> httpx.Response:
    body = record if isinstance(record, bytes) else orjson.dumps(record)
    secret = kw.pop("secret", None) or webhook_secrets(settings)[0]
    extra = kw.pop("headers", {})
    signed = signed_headers(secret, body, kw.pop("ts", None), extra.pop("Idempotency-Key", None))
    return await client.post(path, content=body, headers={**signed, **extra})


def new_purchase(n: int = 0, **overrides) -> dict:
    return recent_purchase(n, **{"purchase_id": f"p-{uuid.uuid4().hex}", **overrides})


def records(settings: Settings, spec: TopicSpec, count: int) -> list[dict]:
    codec = AvroCodec.for_topic(registry_from_settings(settings), spec)
    messages = read_until(settings, spec, lambda ms: len(ms) >= count, timeout=30)
    return [{"key": m.key().decode(), **codec.decode(m.value())} for m in messages]


def with_limits(settings: Settings, **limits: float) -> Settings:
    hook = WebhookSettings(**{**settings.webhook.model_dump(), **limits})
    return settings.model_copy(update={"webhook": hook})


# ------------------------------------------------------------------ accepted


def test_purchase_is_acknowledged_then_on_the_topic_normalised(settings: Settings) -> None:
    wallet = "0x" + "AbCdEf0123" * 4
    record = new_purchase(1, wallet=wallet, currency="eur")

    async def scenario() -> httpx.Response:
        async with gateway_client(settings) as client:
            return await post(client, "/v1/purchases", record, settings)

    before = datetime.now(UTC)
    response = asyncio.run(scenario())
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["id"] == record["purchase_id"] and body["status"] == "accepted"
    [on_topic] = records(settings, PURCHASES, 1)
    assert on_topic["key"] == wallet.lower() == on_topic["wallet"]
    assert on_topic["currency"] == "EUR"
    assert on_topic["ingested_at"] >= before - timedelta(seconds=1)
    assert on_topic["occurred_at"] == record["occurred_at"]


def test_auth_event_and_label_are_keyed_as_designed(settings: Settings) -> None:
    recent = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    auth = {"event_id": f"e-{uuid.uuid4().hex}", "occurred_at": recent,
            "kind": "LOGIN_FAILED", "user_id": "u-9", "ip": "203.0.113.9"}  # fmt: skip
    label = {"purchase_id": "p-42", "occurred_at": int(time.time() * 1000), "is_fraud": True,
             "source": "CHARGEBACK"}  # fmt: skip

    async def scenario() -> list[int]:
        async with gateway_client(settings) as client:
            a = await post(client, "/v1/auth-events", auth, settings)
            b = await post(client, "/v1/labels", label, settings)
            return [a.status_code, b.status_code]

    assert asyncio.run(scenario()) == [202, 202]
    assert records(settings, AUTH_EVENTS, 1)[0]["key"] == "u-9"  # no wallet: the user
    assert records(settings, LABELS, 1)[0]["key"] == "p-42"


# ------------------------------------------------------------------ refused


def test_bad_signatures_are_401_and_security_events(settings: Settings) -> None:
    record, other = new_purchase(2), b"another-secret"

    async def scenario() -> list[httpx.Response]:
        async with gateway_client(settings) as client:
            body = orjson.dumps(record)
            return [
                await post(client, "/v1/purchases", record, settings, secret=other),
                await post(client, "/v1/purchases", record, settings, ts=1_000_000_000),
                await client.post("/v1/purchases", content=body),
                await post(
                    client,
                    "/v1/labels",
                    record,
                    settings,
                    headers={"X-Sentinel-Signature": b"\xe9" * 64},
                ),  # fmt: skip
            ]

    responses = asyncio.run(scenario())
    assert [r.status_code for r in responses] == [401, 401, 401, 401]
    [event] = records(settings, SECURITY_EVENTS, 1)  # one per source and window, not per 401
    assert event["kind"] == "webhook_auth_failed"
    assert event["details"]["count"] == "4"
    assert event["details"]["reasons"].split(",") == [
        "bad_signature:2", "stale_timestamp:1", "missing_headers:1"]  # fmt: skip
    assert (event["ip"], event["key"]) == (PEER, PEER)
    assert topic_records(settings, PURCHASES) == 0
    assert topic_records(settings, SECURITY_EVENTS) == 1


def test_failed_authentications_limit_the_source_before_the_signature_check(settings) -> None:
    """Past 5 failed authentications a minute, the source is refused with 429 before its
    signature is checked, even with a good one; all of it is one security event per window."""
    limited = with_limits(settings, preauth_failures_per_min=5, auth_failure_window_s=0.5)

    async def scenario() -> tuple[list[int], httpx.Response, list[dict]]:
        async with gateway_client(limited) as client:
            bad = [(await post(client, "/v1/purchases", new_purchase(n), limited,
                               secret=b"x" * 32)).status_code for n in range(12)]  # fmt: skip
            good = await post(client, "/v1/purchases", new_purchase(20), limited)
            # published by the gateway's own timer once the window closed
            events = await asyncio.to_thread(records, limited, SECURITY_EVENTS, 1)
            return bad, good, events

    bad, good, events = asyncio.run(scenario())
    assert bad == [401] * 5 + [429] * 7
    assert good.status_code == 429 and good.json()["error"] == "auth_failures"
    assert 1 <= int(good.headers["Retry-After"]) <= 60
    [event] = events
    assert (event["ip"], event["details"]["count"]) == (PEER, "5")
    assert event["details"]["refused_before_auth"] == "8"
    assert topic_records(settings, PURCHASES) == 0


def test_rotated_secrets_both_verify(settings: Settings) -> None:
    old, new = b"old-secret-" + b"o" * 32, b"new-secret-" + b"n" * 32
    rotated = settings.model_copy(update={"webhook": WebhookSettings(
        **{**settings.webhook.model_dump(), "secrets": f"{old.decode()}, {new.decode()}"})})

    async def scenario() -> list[int]:
        async with gateway_client(rotated) as client:
            a = await post(client, "/v1/purchases", new_purchase(3), rotated, secret=old)
            b = await post(client, "/v1/purchases", new_purchase(4), rotated, secret=new)
            c = await post(client, "/v1/purchases", new_purchase(5), rotated, secret=b"x" * 32)
            return [a.status_code, b.status_code, c.status_code]

    assert asyncio.run(scenario()) == [202, 202, 401]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"unit_price_minor": -1}, "unit_price_minor"),
        ({"quantity": 0}, "quantity"),
        ({"quantity": 101}, "quantity"),
        ({"quantity": "2"}, "quantity"),
        ({"wallet": "0x123"}, "wallet"),
        ({"wallet": "0x" + "g" * 40}, "wallet"),
        ({"currency": "XYZ"}, "currency"),
        ({"occurred_at": "2099-01-01T00:00:00Z"}, "occurred_at"),
        ({"occurred_at": "2026-01-01T00:00:00"}, "occurred_at"),
        ({"channel": "BLACK_MARKET"}, "channel"),
        ({"ip": "999.1.1.1"}, "ip"),
        ({"geo": {"lat": 91.0, "lon": 0.0, "country": "DE"}}, "geo.lat"),
        ({"purchase_id": None}, "purchase_id"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_each_bad_field_is_422_naming_it(settings: Settings, overrides: dict, field: str) -> None:
    async def scenario() -> httpx.Response:
        async with gateway_client(settings) as client:
            return await post(client, "/v1/purchases", new_purchase(6, **overrides), settings)

    response = asyncio.run(scenario())
    assert response.status_code == 422, response.text
    assert [f["field"] for f in response.json()["fields"]] == [field]


def test_event_time_ahead_of_the_gateway_clock_is_422_and_not_published(settings) -> None:
    ahead = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()

    async def scenario() -> httpx.Response:
        async with gateway_client(settings) as client:
            return await post(client, "/v1/purchases", new_purchase(5, occurred_at=ahead),
                              settings)  # fmt: skip

    response = asyncio.run(scenario())
    assert response.status_code == 422, response.text
    [field] = response.json()["fields"]
    assert field["field"] == "occurred_at" and "ahead" in field["message"]
    assert topic_records(settings, PURCHASES) == 0


def test_several_bad_fields_missing_fields_and_bad_json_are_422(settings: Settings) -> None:
    async def scenario() -> list[httpx.Response]:
        async with gateway_client(settings) as client:
            many = new_purchase(7, quantity=0, unit_price_minor=-5, currency="ZZZ")
            del many["wallet"]
            return [
                await post(client, "/v1/purchases", many, settings),
                await post(client, "/v1/purchases", b'{"purchase_id": ', settings),
                await post(client, "/v1/labels", b"[1, 2]", settings),
            ]

    many, broken, array = asyncio.run(scenario())
    assert many.status_code == 422
    assert sorted(f["field"] for f in many.json()["fields"]) == [
        "currency", "quantity", "unit_price_minor", "wallet"]  # fmt: skip
    assert (broken.status_code, broken.json()["fields"][0]["field"]) == (422, "body")
    assert (array.status_code, array.json()["fields"][0]["field"]) == (422, "body")
    assert topic_records(settings, PURCHASES) == 0


def test_body_over_64_kib_is_413(settings: Settings) -> None:
    async def scenario() -> list[int]:
        async with gateway_client(settings) as client:
            padded = new_purchase(8, user_agent="x" * 70_000)

            async def chunked() -> AsyncIterator[bytes]:  # no Content-Length
                for _ in range(80):
                    yield b" " * 1024

            a = await post(client, "/v1/purchases", padded, settings)
            b = await client.post("/v1/purchases", content=chunked())
            return [a.status_code, b.status_code]

    assert asyncio.run(scenario()) == [413, 413]


# ------------------------------------------------------------------ rate limits


def test_wallet_ip_and_global_limits_are_429_with_retry_after(settings: Settings) -> None:
    limited = with_limits(settings, rate_per_wallet_per_min=2, rate_per_ip_per_min=3,
                          rate_global_per_min=4)  # fmt: skip
    wallet = "0x" + "1" * 40

    async def scenario() -> list[httpx.Response]:
        async with gateway_client(limited) as client:
            same_wallet = [new_purchase(9, wallet=wallet, ip=f"192.0.2.{i}") for i in range(3)]
            same_ip = [new_purchase(10 + i, ip="192.0.2.200") for i in range(3)]
            return [await post(client, "/v1/purchases", r, limited) for r in same_wallet + same_ip]

    responses = asyncio.run(scenario())
    assert [r.status_code for r in responses] == [202, 202, 429, 202, 202, 429], [r.text for r in responses]
    assert [responses[2].json()["limit"], responses[5].json()["limit"]] == ["wallet", "global"]
    assert all(1 <= int(responses[i].headers["Retry-After"]) <= 60 for i in (2, 5))
    events = records(limited, SECURITY_EVENTS, 2)
    assert {e["kind"] for e in events} == {"rate_limit_exceeded"}
    assert sorted(e["details"]["limit"] for e in events) == ["global", "wallet"]
    by_limit = {e["details"]["limit"]: e for e in events}
    assert by_limit["wallet"]["wallet"] == wallet
    # the global limit says nothing about the buyer: no IP or wallet to block
    assert (by_limit["global"]["ip"], by_limit["global"]["wallet"]) == (None, None)


def test_per_ip_limit(settings: Settings) -> None:
    limited = with_limits(settings, rate_per_ip_per_min=2)

    async def scenario() -> list[int]:
        async with gateway_client(limited) as client:
            batch = [new_purchase(20 + i, ip="192.0.2.77") for i in range(3)]
            other = new_purchase(30, ip="192.0.2.78")
            return [(await post(client, "/v1/purchases", r, limited)).status_code
                    for r in [*batch, other]]  # fmt: skip

    assert asyncio.run(scenario()) == [202, 202, 429, 202]
    [event] = records(limited, SECURITY_EVENTS, 1)
    assert (event["ip"], event["details"]["limit"]) == ("192.0.2.77", "ip")


def test_ipv6_buyers_are_limited_per_64_and_mapped_ipv4_as_ipv4(settings: Settings) -> None:
    """Rotating through one /64, or writing an IPv4 address as IPv6, does not escape the
    per-IP limit."""
    limited = with_limits(settings, rate_per_ip_per_min=2)
    same_64 = ["2001:db8:7:7::1", "2001:db8:7:7:ffff::2", "2001:db8:7:7:1234::3"]
    mapped = ["192.0.2.55", "::ffff:192.0.2.55", "::FFFF:C000:0237"]

    async def scenario() -> list[int]:
        async with gateway_client(limited) as client:
            return [(await post(client, "/v1/purchases", new_purchase(60 + i, ip=ip),
                                limited)).status_code for i, ip in enumerate(same_64 + mapped)]

    assert asyncio.run(scenario()) == [202, 202, 429, 202, 202, 429]
    on_topic = {r["ip"] for r in records(limited, PURCHASES, 4)}
    assert "192.0.2.55" in on_topic and not any(ip.startswith("::ffff") for ip in on_topic)


# ------------------------------------------------------------------ idempotency


def test_repeat_returns_first_response_and_publishes_nothing_new(settings: Settings) -> None:
    record = new_purchase(40)

    async def scenario() -> list[httpx.Response]:
        async with gateway_client(settings) as client:
            first = await post(client, "/v1/purchases", record, settings)
            again = await post(client, "/v1/purchases", record, settings)
            keyed = [await post(client, "/v1/purchases", new_purchase(41), settings,
                                headers={"Idempotency-Key": "k-1"}) for _ in range(2)]  # fmt: skip
            return [first, again, *keyed]

    first, again, keyed_a, keyed_b = asyncio.run(scenario())
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert keyed_a.status_code == 202
    assert keyed_b.status_code == 422  # same key, different record
    assert keyed_b.json()["fields"][0]["field"] == "Idempotency-Key"
    assert topic_records(settings, PURCHASES) == 2


def test_a_captured_request_replayed_with_new_keys_is_not_published_again(settings) -> None:
    """The Idempotency-Key is signed: a request captured on the wire and re-sent within the
    timestamp tolerance with a new key (or without its key) is refused, not published."""
    body = orjson.dumps(new_purchase(45))
    captured = signed_headers(webhook_secrets(settings)[0], body, idempotency_key="k-45")

    async def scenario() -> list[httpx.Response]:
        async with gateway_client(settings) as client:
            first = await client.post("/v1/purchases", content=body, headers=captured)
            replays = [await client.post("/v1/purchases", content=body,
                                         headers={**captured, "Idempotency-Key": key})
                       for key in ("k-46", "k-47", "fresh-uuid-0001")]  # fmt: skip
            keyless = {k: v for k, v in captured.items() if k != "Idempotency-Key"}
            replays.append(await client.post("/v1/purchases", content=body, headers=keyless))
            same = await client.post("/v1/purchases", content=body, headers=captured)
            return [first, *replays, same]

    first, *replays, same = asyncio.run(scenario())
    assert first.status_code == 202
    assert [r.status_code for r in replays] == [401] * 4
    assert (same.status_code, same.headers["Idempotent-Replayed"]) == (202, "true")
    assert topic_records(settings, PURCHASES) == 1


def test_an_idempotency_key_with_a_dot_or_control_character_is_422(settings) -> None:
    async def scenario() -> list[httpx.Response]:
        async with gateway_client(settings) as client:
            return [await post(client, "/v1/purchases", new_purchase(48), settings,
                               headers={"Idempotency-Key": key}) for key in ("a.b", "a b")]

    for response in asyncio.run(scenario()):
        assert response.status_code == 422, response.text
        assert response.json()["fields"][0]["field"] == "Idempotency-Key"


def test_concurrent_duplicates_publish_once(settings: Settings) -> None:
    record = new_purchase(50)

    async def scenario() -> list[httpx.Response]:
        async with gateway_client(settings) as client:
            return await asyncio.gather(
                *(post(client, "/v1/purchases", record, settings) for _ in range(20))
            )

    responses = asyncio.run(scenario())
    assert {r.status_code for r in responses} == {202}
    assert len({r.text for r in responses}) == 1
    assert sum("Idempotent-Replayed" in r.headers for r in responses) == 19
    assert topic_records(settings, PURCHASES) == 1


# ------------------------------------------------------------------ broker down


def test_broker_unreachable_is_503_within_the_delivery_timeout(settings: Settings) -> None:
    from infra.observe import free_port
    from infra.settings import KafkaSettings

    kafka = KafkaSettings(**{**settings.kafka.model_dump(),
                             "bootstrap_servers": f"127.0.0.1:{free_port()}"})  # fmt: skip
    down = settings.model_copy(update={"kafka": kafka})
    record = new_purchase(60)

    async def scenario() -> tuple[list[httpx.Response], httpx.Response, float]:
        async with gateway_client(down, delivery_timeout_ms=1500) as client:
            started = asyncio.get_running_loop().time()
            first, duplicate = await asyncio.gather(
                post(client, "/v1/purchases", record, down),
                post(client, "/v1/purchases", record, down),
            )
            elapsed = asyncio.get_running_loop().time() - started
            health = await client.get("/healthz")
        async with gateway_client(settings) as client:  # the retry, broker back
            retry = await post(client, "/v1/purchases", record, settings)
        return [first, duplicate, health], retry, elapsed

    (first, duplicate, health), retry, elapsed = asyncio.run(scenario())
    assert sorted([first.status_code, duplicate.status_code]) == [409, 503]
    assert first.headers["Retry-After"] == duplicate.headers["Retry-After"] == "1"
    assert elapsed < 5
    assert (health.status_code, health.json()["kafka"]) == (503, False)
    assert retry.status_code == 202  # the claim was released: the retry publishes
    assert topic_records(settings, PURCHASES) == 1


# ------------------------------------------------------------------ reads


def test_decision_lookup_needs_a_key_404s_then_waits_for_it(
    settings: Settings, pg_dsn: str, redis_client
) -> None:
    settings = with_database(settings, pg_dsn)
    _, _, key = user_with_key(pg_dsn, "analyst")
    auth = {"Authorization": f"Bearer {key}"}
    purchase_id = f"p-{uuid.uuid4().hex}"
    path = f"/v1/decisions/{purchase_id}"
    decision = {"purchase_id": purchase_id, "decision": "APPROVED", "score": 0.1}

    async def scenario() -> tuple[list[httpx.Response], float, float]:
        app = create_app(settings)
        async with app_client(app) as client:
            loop = asyncio.get_running_loop()
            anonymous = await client.get(path)
            wrong = await client.get(path, headers={"Authorization": "Bearer snt_00_nope"})
            started = loop.time()
            missing = await client.get(f"{path}?wait_ms=300", headers=auth)
            waited = loop.time() - started
            waiting = asyncio.create_task(client.get(f"{path}?wait_ms=10000", headers=auth))
            await until_waiting(app.state.waiter)
            stored_at = loop.time()
            # What the Redis sink does when it stores a decision: the key, then a notification.
            await asyncio.to_thread(redis_client.set, key_of(purchase_id), orjson.dumps(decision))
            await asyncio.to_thread(redis_client.publish, redis_keys.DECISION_STORED, purchase_id)
            found = await waiting
            woke = loop.time() - stored_at
            bad = await client.get(f"{path}?wait_ms=-1", headers=auth)
            return [anonymous, wrong, missing, found, bad], waited, woke

    try:
        (anonymous, wrong, missing, found, bad), waited, woke = asyncio.run(scenario())
    finally:
        redis_client.delete(key_of(purchase_id))
    assert (anonymous.status_code, wrong.status_code) == (401, 401)
    assert anonymous.json()["error"] == "unauthorized"
    assert missing.status_code == 404 and waited >= 0.3
    assert (found.status_code, found.json()) == (200, decision)
    assert woke < 1.0  # woken by the notification, not by the 2 s safety re-read
    assert bad.status_code == 422


def key_of(purchase_id: str) -> str:
    return redis_keys.decision(purchase_id)


def test_health_metrics_and_openapi(settings: Settings) -> None:
    async def scenario() -> list[httpx.Response]:
        async with gateway_client(settings) as client:
            await post(client, "/v1/purchases", new_purchase(70), settings)
            return [await client.get(p) for p in ("/readyz", "/metrics", "/openapi.json")]

    ready, metrics, openapi = asyncio.run(scenario())
    assert (ready.status_code, ready.json()) == (200, {"status": "ok", "kafka": True, "redis": True})
    assert 'sentinel_gateway_requests_total{endpoint="purchases",status="202"} 1.0' in metrics.text
    doc = openapi.json()
    assert {"/v1/purchases", "/v1/auth-events", "/v1/labels", "/v1/decisions/{purchase_id}"} <= set(
        doc["paths"]
    )
    assert {"PurchaseIn", "AuthEventIn", "LabelIn", "Geo"} <= set(doc["components"]["schemas"])
    post_doc = doc["paths"]["/v1/purchases"]["post"]
    assert {"202", "401", "413", "422", "429", "503"} <= set(post_doc["responses"])
