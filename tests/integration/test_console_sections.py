"""The console's sections against real PostgreSQL, Redis and Kafka: each /v1/ answer equals
what the raw rows say (counted here with plain SQL over the same window), alerts move through
their states with who and when, blocklist changes are audited, lag and dead letters come from
the broker."""

from __future__ import annotations

import asyncio
import ipaddress
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from infra import redis_keys, topics
from infra.settings import Settings
from sinks.redis import VERDICTS
from sinks.testing import decision, security_event, wait_until
from tests.support.console import (
    console_client,
    migrated_database,
    refresh_rollups,
    sign_in,
    store,
    user_with_key,
    with_database,
)
from tests.support.kafka import produce
from tests.support.records import purchase

pytestmark = pytest.mark.integration
CURRENCIES = ("EUR", "JPY")


def burst(now: datetime, n: int = 240, tag: str = "") -> tuple[list[dict], list[dict], list[dict]]:
    """Decisions, purchases and labels spread over the last 47 hours (both KPI windows),
    every verdict, two currencies, latencies from 3 ms to 3 s."""
    rng = random.Random(7)
    ds, ps, ls = [], [], []
    for i in range(n):
        at = now - timedelta(minutes=11.75 * i + 1, seconds=rng.random())
        pid = f"p{tag}-{i}"
        verdict = VERDICTS[rng.randrange(4)]
        latency = 3 * 1000 ** rng.random()
        ds.append(decision(i, purchase_id=pid, decision_id=f"dec_{pid}", decision=verdict,
                           occurred_at=at, decided_at=at + timedelta(milliseconds=latency),
                           latency_ms=latency, score=rng.random(), model_score=rng.random(),
                           wallet=f"0x{rng.getrandbits(160):040x}"))  # fmt: skip
        ps.append(purchase(i, purchase_id=pid, occurred_at=at, wallet=ds[-1]["wallet"],
                           currency=CURRENCIES[i % 2], quantity=1 + i % 3,
                           unit_price_minor=1000 + 37 * i))  # fmt: skip
        if i % 3 == 0:
            ls.append({"purchase_id": pid, "occurred_at": now - timedelta(hours=i % 40, minutes=30),
                       "is_fraud": verdict == "BLOCKED" or i % 9 == 0, "source": "CHARGEBACK",
                       "pattern": None, "reviewer": None})  # fmt: skip
    return ds, ps, ls


@pytest.fixture(scope="module")
def stored(stack: Settings):
    """A migrated database holding one burst (and the burst's records)."""
    with migrated_database(stack) as dsn:
        ds, ps, ls = burst(datetime.now(UTC))
        store(dsn, (topics.DECISIONS, ds), (topics.PURCHASES, ps))
        store(dsn, (topics.LABELS, ls))
        refresh_rollups(dsn)
        yield dsn, ds, ps


@pytest.fixture(scope="module")
def db(stored) -> str:
    return stored[0]


@pytest.fixture(scope="module")
def keys(db: str) -> dict[str, str]:
    return {role: user_with_key(db, role)[2] for role in ("viewer", "analyst")}


def get(settings: Settings, path: str, key: str) -> dict:
    async def run() -> httpx.Response:
        async with console_client(settings) as client:
            return await client.get(path, headers={"Authorization": f"Bearer {key}"})

    response = asyncio.run(run())
    assert response.status_code == 200, response.text
    return response.json()


def rows(dsn: str, query: str, params) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


def test_kpis_equal_the_raw_rows_of_each_window(settings: Settings, db: str, keys) -> None:
    data = get(with_database(settings, db), "/v1/kpis", keys["viewer"])
    w = data["window"]
    for period, lo, hi in (("current", w["start"], w["end"]), ("previous", w["previous_start"], w["start"])):
        shown = data[period]
        verdicts = dict(rows(db, "SELECT decision, count(*) FROM decisions WHERE occurred_at >= %s"
                                 " AND occurred_at < %s GROUP BY 1", (lo, hi)))  # fmt: skip
        assert {v: shown["counts"][v] for v in VERDICTS} == {v: verdicts.get(v, 0) for v in VERDICTS}
        total = sum(verdicts.values())
        assert total > 50 and shown["counts"]["decisions"] == total
        assert shown["shares"]["BLOCKED"] == pytest.approx(verdicts.get("BLOCKED", 0) / total)
        (purchases,), = rows(db, "SELECT count(*) FROM purchases WHERE occurred_at >= %s"
                                 " AND occurred_at < %s", (lo, hi))  # fmt: skip
        assert shown["purchases"] == purchases
        revenue = dict(rows(db, "SELECT p.currency, sum(p.unit_price_minor * p.quantity) FROM purchases p"
                                " JOIN decisions d USING (purchase_id, occurred_at) WHERE d.decision = 'APPROVED'"
                                " AND p.occurred_at >= %s AND p.occurred_at < %s GROUP BY 1", (lo, hi)))  # fmt: skip
        assert {c: shown["revenue"][c]["approved_minor"] for c in shown["revenue"]} == {
            c.strip(): int(v) for c, v in revenue.items()}  # fmt: skip
        for q in (50, 95, 99):
            (true,), = rows(db, "SELECT percentile_disc(%s) WITHIN GROUP (ORDER BY latency_ms)"
                                " FROM decisions WHERE occurred_at >= %s AND occurred_at < %s",
                            (q / 100, lo, hi))  # fmt: skip
            assert shown["latency_ms"][f"p{q}"] == pytest.approx(true, rel=0.11)  # one bucket: 10 %


def test_redelivered_rows_change_no_number(settings: Settings, stored, keys) -> None:
    db, ds, ps = stored
    before = get(with_database(settings, db), "/v1/kpis", keys["viewer"])
    store(db, (topics.DECISIONS, ds[:50]), (topics.PURCHASES, ps[:50]))  # inserts nothing
    assert refresh_rollups(db) == 0  # nothing was inserted, so no minute was marked
    after = get(with_database(settings, db), "/v1/kpis", keys["viewer"])
    assert after["current"]["counts"] == before["current"]["counts"]


def test_fraud_section_scores_and_high_risk_feed(settings: Settings, db: str, keys) -> None:
    data = get(with_database(settings, db), "/v1/fraud", keys["viewer"])
    scores = data["scores"]
    (n,), = rows(db, "SELECT count(*) FROM decisions WHERE occurred_at >= %s AND occurred_at < %s",
                 (scores["window"]["start"], scores["window"]["end"]))  # fmt: skip
    assert sum(scores["current"]) == n
    (top,), = rows(db, "SELECT count(*) FROM decisions WHERE score >= 0.95 AND occurred_at >= %s"
                       " AND occurred_at < %s", (scores["window"]["start"], scores["window"]["end"]))  # fmt: skip
    assert scores["current"][19] == top
    feed = data["feed"]
    expected = rows(db, "SELECT purchase_id FROM decisions WHERE decision IN ('MANUAL_REVIEW', 'BLOCKED')"
                        " ORDER BY occurred_at DESC LIMIT 50", ())  # fmt: skip
    assert [d["purchase_id"] for d in feed] == [r[0] for r in expected]
    assert all(d["reasons"] and d["contributions"] for d in feed)


def test_model_health_confusion_against_labels(settings: Settings, db: str, keys) -> None:
    data = get(with_database(settings, db), "/v1/model", keys["viewer"])
    for name, span in (("24h", timedelta(hours=24)), ("7d", timedelta(days=7))):
        since = datetime.now(UTC) - span
        raw = rows(db, "SELECT d.decision, l.is_fraud, count(*) FROM labels l JOIN decisions d USING"
                       " (purchase_id) WHERE l.occurred_at >= date_trunc('minute', %s::timestamptz)"
                       " GROUP BY 1, 2", (since,))  # fmt: skip
        matrix = data["windows"][name]["confusion"]["matrix"]
        for verdict, is_fraud, count in raw:
            assert matrix[verdict]["fraud" if is_fraud else "legit"] == count
        assert data["windows"][name]["confusion"]["labels"] == sum(c for *_, c in raw)
    assert data["registry"]["champion"]["version"]


def _alerts(now: datetime) -> list[dict]:
    tag = uuid.uuid4().hex[:8]
    return [{"alert_id": f"alrt_{tag}_{sev}", "rule": "brute_force", "group_key": "203.0.113.9",
             "severity": sev, "count": 5, "first_seen": now - timedelta(minutes=5), "last_seen": now,
             "event_ids": ["e1"], "responses": [{"action": "block_ip", "target": "203.0.113.9",
                                                 "expires_at": None, "status": "done"}],
             "created_at": now} for sev in ("LOW", "HIGH")]  # fmt: skip


def test_alerts_filter_acknowledge_resolve_with_who_and_when(settings: Settings, db: str, keys) -> None:
    settings = with_database(settings, db)
    low, high = _alerts(datetime.now(UTC))
    store(db, (topics.ALERTS, [low, high]))
    name, password, _ = user_with_key(db, "analyst")
    auth = {"Authorization": f"Bearer {keys['analyst']}"}

    async def scenario():
        async with console_client(settings) as client:
            filtered = await client.get("/v1/alerts?severity=HIGH", headers=auth)
            early = await client.post(f"/v1/alerts/{high['alert_id']}/resolve", headers=auth)
            viewer = await client.post(f"/v1/alerts/{high['alert_id']}/acknowledge",
                                       headers={"Authorization": f"Bearer {keys['viewer']}"})  # fmt: skip
            await sign_in(client, name, password)
            no_csrf = await client.post(f"/v1/alerts/{high['alert_id']}/acknowledge")
            page = await client.get("/siem", headers={"accept": "text/html"})
            csrf = page.text.split('name="csrf-token" content="')[1].split('"')[0]
            ack = await client.post(f"/v1/alerts/{high['alert_id']}/acknowledge",
                                    headers={"X-CSRF-Token": csrf}, json={"note": "looking"})  # fmt: skip
            done = await client.post(f"/v1/alerts/{high['alert_id']}/resolve", headers=auth)
            return filtered, early, viewer, no_csrf, ack, done

    filtered, early, viewer, no_csrf, ack, done = asyncio.run(scenario())
    ids = {a["alert_id"] for a in filtered.json()["alerts"]}
    assert high["alert_id"] in ids and low["alert_id"] not in ids
    assert early.status_code == 409 and "needs acknowledged" in early.json()["message"]
    assert (viewer.status_code, no_csrf.status_code) == (403, 403)
    assert ack.status_code == 200 and ack.json()["state"] == "acknowledged"
    assert ack.json()["acknowledged_by"] == name and ack.json()["note"] == "looking"
    assert done.json()["state"] == "resolved" and done.json()["resolved_at"]
    audit = rows(db, "SELECT actor, action FROM audit_log WHERE target_id = %s ORDER BY audit_id",
                 (high["alert_id"],))  # fmt: skip
    assert [a for _, a in audit] == ["alert.acknowledge", "alert.resolve"] and audit[0][0] == name


def test_blocklist_changes_show_with_expiry_and_are_audited(settings: Settings, db: str, keys, redis_client) -> None:
    settings = with_database(settings, db)
    ip = str(ipaddress.ip_address("198.18.0.0") + random.randrange(1, 65000))
    auth = {"Authorization": f"Bearer {keys['analyst']}"}

    async def scenario():
        async with console_client(settings) as client:
            added = await client.post("/v1/blocklist/ip", headers=auth,
                                      json={"value": ip, "ttl_s": 600, "reason": "test"})  # fmt: skip
            shown = await client.get("/v1/traffic", headers=auth)
            removed = await client.delete(f"/v1/blocklist/ip/{ip}", headers=auth)
            gone = await client.get("/v1/traffic", headers=auth)
            return added, shown, removed, gone

    before_ms = time.time() * 1000
    try:
        added, shown, removed, gone = asyncio.run(scenario())
    finally:
        redis_client.zrem(redis_keys.blocklist("ip"), ip)
    assert added.status_code == 200 and removed.json()["changed"] is True
    entry = next(e for e in shown.json()["blocked"]["ip"] if e["value"] == ip)
    assert entry["reason"] == "test"
    assert before_ms + 600_000 <= entry["expires_at_ms"] <= time.time() * 1000 + 600_000
    assert ip not in {e["value"] for e in gone.json()["blocked"]["ip"]}
    audit = rows(db, "SELECT action, details->>'ttl_s' FROM audit_log WHERE target_kind = 'ip'"
                     " AND target_id = %s ORDER BY audit_id", (ip,))  # fmt: skip
    assert audit == [("blocklist.add", "600.0"), ("blocklist.remove", None)]


def test_rate_limited_sources_come_from_refusals_and_the_gateway_windows(
    settings: Settings, db: str, keys, redis_client
) -> None:
    settings = with_database(settings, db)
    ns = redis_keys.namespace(settings.kafka.topic_prefix)
    busy, calm, old = "198.18.7.7", "198.18.7.8", "198.18.7.9"
    now = datetime.now(UTC)
    now_ms = int(now.timestamp() * 1000)
    limit = settings.webhook.rate_per_ip_per_min
    # What the gateway leaves behind: 429s as security events, sliding windows in Redis.
    refusals = [security_event(i, "rate_limit_exceeded", now - timedelta(seconds=i), ip=ip,
                               event_id=f"se-{uuid.uuid4().hex}", details={"limit": "ip"})
                for i, ip in enumerate([busy, busy, calm])]  # fmt: skip
    refusals.append(security_event(9, "rate_limit_exceeded", now - timedelta(minutes=30), ip=old,
                                   event_id=f"se-{uuid.uuid4().hex}", details={"limit": "ip"}))  # fmt: skip
    store(db, (topics.SECURITY_EVENTS, refusals))
    redis_client.zadd(redis_keys.rate_limit(ns, "ip", busy), {f"r{i}": now_ms - i for i in range(limit)})
    redis_client.zadd(redis_keys.rate_limit(ns, "ip", calm), {"r0": now_ms, "old": now_ms - 120_000})
    for value in (busy, calm):
        redis_client.pexpire(redis_keys.rate_limit(ns, "ip", value), 60_000)
    data = get(settings, "/v1/traffic", keys["analyst"])
    limited = {r["value"]: r for r in data["limited"]["ip"]}
    assert set(limited) == {busy, calm}  # the 30-minute-old refusal is out of the window
    assert (limited[busy]["refusals"], limited[busy]["requests"], limited[busy]["limited"]) == (2, limit, True)
    assert (limited[calm]["requests"], limited[calm]["limited"]) == (1, False)  # old entry out
    assert 0 < limited[busy]["expires_in_s"] <= 60
    masked = get(settings, "/v1/traffic", keys["viewer"])
    assert busy not in str(masked) and "198.18.7.0/24" in {r["value"] for r in masked["limited"]["ip"]}


def _with_group(data: dict, group: str) -> dict | None:
    return data if any(g["group"] == group for g in data["groups"]) else None


def test_system_shows_lag_per_partition_and_dead_letters(settings: Settings, db: str, keys) -> None:
    settings = with_database(settings, db)
    group = f"{settings.kafka.topic_prefix}sentinel-sink-postgres"
    name, partition = topics.full_name(topics.DECISIONS, settings.kafka.topic_prefix), 3
    producer = Producer(settings.kafka.producer_conf())
    for _ in range(5):
        producer.produce(name, b"v", b"k", partition=partition)
    assert producer.flush(30) == 0
    produce(settings, topics.dlq(topics.PURCHASES), [(b"k", b"bad")] * 2)
    consumer = Consumer(settings.kafka.consumer_conf(group))
    try:
        consumer.commit(offsets=[TopicPartition(name, partition, 2)], asynchronous=False)
    finally:
        consumer.close()
    data = wait_until(lambda: _with_group(get(settings, "/v1/system", keys["viewer"]), group), 60,
                      "the group in a Kafka sample")  # the console samples Kafka in the background
    row = next(g for g in data["groups"] if g["group"] == group)
    (lagging,) = [p for p in row["partitions"] if p["topic"] == name and p["partition"] == partition]
    assert (lagging["committed"], lagging["end"], lagging["lag"]) == (2, 5, 3)
    assert lagging["lag_s"] > 0 and row["lag"] == 3
    assert data["dead_letters"][topics.PURCHASES.name] == 2
    status = {s["service"]: s["status"] for s in data["services"]}
    assert status["postgres"] == status["redis"] == status["kafka"] == "up"
    assert status["sink postgres"] == "down"  # a committed offset but no live member
