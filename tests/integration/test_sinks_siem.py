"""The SIEM correlator end to end on the real broker, PostgreSQL and Redis: security and auth
events in -> an alert on the alerts topic, an alert row, the IP blocked, the wallet
blacklisted, the admin account locked, the webhook notified."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest
import redis as redis_lib
from confluent_kafka import Consumer, Producer, TopicPartition

from infra import redis_keys, topics
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from sinks.base import Record, SinkUnavailableError
from sinks.blocklist import Blocklist
from sinks.config import RULES_FILE, SinkSettings
from sinks.postgres import PostgresSink
from sinks.runner import SinkLoop
from sinks.siem.correlate import Alert, Plan
from sinks.siem.escalation import Offences, RepeatPolicy
from sinks.siem.respond import Responder, Webhook
from sinks.siem.rules import load_rules
from sinks.siem.sink import SiemSink
from sinks.testing import T0, running, security_event, wait_until
from tests.support.kafka import produce, read_until

pytestmark = pytest.mark.integration


class Hook(BaseHTTPRequestHandler):
    received: list[tuple[dict, str]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((json.loads(body), self.headers["Idempotency-Key"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list]]:
    received: list = []
    handler = type("Handler", (Hook,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/alerts", received
    server.shutdown()
    server.server_close()
    thread.join(10)


@pytest.fixture
def targets(redis_client) -> Iterator[dict[str, str]]:
    """An attacker IP, wallet and admin of this test only; their Redis entries removed after."""
    n = random.randrange(1, 2**16)
    t = {"ip": f"198.18.{n >> 8}.{n & 255}", "wallet": f"0x{n:040x}", "admin": f"admin-{n}"}
    yield t
    bl = Blocklist(redis_client)
    bl.remove("ip", t["ip"])
    bl.remove("wallet", t["wallet"])
    redis_client.delete(redis_keys.locked(t["admin"]))
    offences = Offences(redis_client, 0)
    for kind, target in (("ip", t["ip"]), ("wallet", t["wallet"]), ("account", t["admin"])):
        offences.forget(kind, target)


def test_security_events_in_alerts_and_responses_out(settings, pg_dsn, redis_client, webhook,
                                                    targets):
    url, received = webhook
    registry = registry_from_settings(settings)
    se = AvroCodec.for_topic(registry, topics.SECURITY_EVENTS)
    auth = AvroCodec.for_topic(registry, topics.AUTH_EVENTS)
    ip, wallet, admin = targets["ip"], targets["wallet"], targets["admin"]
    events = [security_event(i, "login_failed", T0 + timedelta(seconds=i), ip=ip)
              for i in range(4)]
    events += [security_event(10 + i, "fraud_detected", T0 + timedelta(minutes=i),
                              wallet=wallet, severity="HIGH") for i in range(3)]
    produce(settings, topics.SECURITY_EVENTS, [(ip, se.encode(e)) for e in events])
    logins = [{"event_id": f"ae-{i}", "occurred_at": T0 + timedelta(seconds=30 + i),
               "kind": kind, "user_id": user, "ip": ip}
              for i, (kind, user) in enumerate([("LOGIN_FAILED", "u-1")]
                                               + [("ADMIN_MFA_FAILED", admin)] * 3)]
    produce(settings, topics.AUTH_EVENTS, [(b"u", auth.encode(a)) for a in logins])
    produce(settings, topics.SECURITY_EVENTS, [(b"x", b"\x00\x00\x00\x00\x01\xff")])

    client = redis_lib.Redis.from_url(settings.redis.dsn)
    responder = Responder(client, pg_dsn, Webhook(url))
    siem = SinkLoop(settings, SiemSink(settings, responder, load_rules(RULES_FILE)), SinkSettings())
    store = SinkLoop(settings, PostgresSink(pg_dsn, [topics.ALERTS]), SinkSettings())
    with running(siem), running(store):
        messages = read_until(settings, topics.ALERTS, lambda m: len(m) >= 3)
        wait_until(lambda: _rows(pg_dsn, "SELECT count(*) FROM alerts")[0][0] == 3, 60,
                   "3 alert rows")
        wait_until(lambda: siem.stats.dead_letters == 1, 30, "the bad event dead-lettered")
    assert siem.error is None and store.error is None

    codec = AvroCodec.for_topic(registry, topics.ALERTS)
    alerts = {a["rule"]: a for a in (codec.decode(m.value()) for m in messages)}
    assert set(alerts) == {"brute_force", "fraud_ring", "admin_mfa_failures"}
    assert topic_size(settings, topics.ALERTS) == 3  # one per rule and group
    brute = alerts["brute_force"]
    assert (brute["group_key"], brute["count"]) == (ip, 5)
    assert brute["event_ids"] == ["se-0", "se-1", "se-2", "se-3", "ae-0"]
    assert [(r["action"], r["target"], r["status"]) for r in brute["responses"]] == [
        ("block_ip", ip, "done"), ("notify", url, "done")]
    block_expiry = brute["responses"][0]["expires_at"]
    assert block_expiry is not None

    bl = Blocklist(redis_client)
    assert bl.contains_many("ip", [ip, "198.51.100.200"]) == {ip}
    assert bl.contains("wallet", wallet)
    assert json.loads(redis_client.get(redis_keys.locked(admin)))["reason"].startswith(
        "admin_mfa_failures")
    assert 3500 < redis_client.ttl(redis_keys.locked(admin)) <= 3600
    [(listed, source, expires)] = _rows(pg_dsn, "SELECT wallet, source, expires_at"
                                                " FROM blacklisted_wallets")  # fmt: skip
    assert (listed, source) == (wallet, "siem") and expires is not None  # never for good
    assert 23.9 * 3600 < (expires - datetime.now(UTC)).total_seconds() <= 24 * 3600

    row = _rows(pg_dsn, "SELECT alert_id, rule, count, responses FROM alerts"
                        " WHERE rule = 'brute_force'")[0]
    assert row[:3] == (brute["alert_id"], "brute_force", 5)
    assert row[3][0]["target"] == ip and row[3][0]["status"] == "done"

    assert sorted(key for _, key in received) == sorted(a["alert_id"] for a in alerts.values())
    assert {body["rule"] for body, _ in received} == set(alerts)


def topic_size(settings, spec) -> int:
    """Records on a topic (nothing is deleted in a test): the sum of high watermarks."""
    consumer = Consumer(settings.kafka.consumer_conf(f"size-{random.random()}"))
    try:
        name = topics.full_name(spec, settings.kafka.topic_prefix)
        partitions = consumer.list_topics(name, timeout=10).topics[name].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1]
                   for p in partitions)
    finally:
        consumer.close()


def _rows(dsn: str, query: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query).fetchall()


def _siem_loop(settings, pg_dsn, client=None) -> SinkLoop:
    client = client or redis_lib.Redis.from_url(settings.redis.dsn)
    sink = SiemSink(settings, Responder(client, pg_dsn), load_rules(RULES_FILE))
    return SinkLoop(settings, sink, SinkSettings())


def _failed_logins(ip: str, numbers: range) -> list[dict]:
    return [security_event(i, "login_failed", T0 + timedelta(seconds=i), ip=ip) for i in numbers]


def _send_failed_logins(settings, ip: str, numbers: range) -> None:
    se = AvroCodec.for_topic(registry_from_settings(settings), topics.SECURITY_EVENTS)
    produce(settings, topics.SECURITY_EVENTS, [(ip, se.encode(e))
                                               for e in _failed_logins(ip, numbers)])


def test_a_restart_rebuilds_the_windows_and_does_not_repeat_alerts(settings, pg_dsn, targets):
    ip = targets["ip"]
    alerts_seen = []

    def send(numbers: range) -> None:
        _send_failed_logins(settings, ip, numbers)

    send(range(3))
    first = _siem_loop(settings, pg_dsn)
    with running(first):
        wait_until(lambda: first.stats.written == 3, 60, "3 events seen")
    send(range(3, 5))  # the 4th and 5th failures arrive while the correlator is down
    second = _siem_loop(settings, pg_dsn)
    with running(second):
        alerts_seen = read_until(settings, topics.ALERTS, lambda m: len(m) >= 1)
        wait_until(lambda: second.stats.written == 5, 60, "3 replayed + 2 new events")
    third = _siem_loop(settings, pg_dsn)  # a restart after the alert: nothing new
    with running(third):
        wait_until(lambda: third.stats.written == 5, 60, "all 5 replayed")
        # the published alert keeps the group quiet: its events are absorbed, not re-fired
        assert third.sink.correlator.stats.absorbed == 5
        assert third.sink.replays_suppressed == 0
    assert not any(loop.error for loop in (first, second, third))
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.ALERTS)
    [alert] = [codec.decode(m.value()) for m in alerts_seen]
    assert (alert["rule"], alert["count"], alert["group_key"]) == ("brute_force", 5, ip)
    assert alert["event_ids"] == [f"se-{i}" for i in range(5)]
    assert topic_size(settings, topics.ALERTS) == 1


def test_a_restart_that_reads_none_of_an_incidents_events_again_still_knows_its_alert(
        settings, pg_dsn, targets):
    """The windows a restart rebuilds come from the events read again (``rewind_ms`` of record
    time), which need not include those an alert fired on; the incident's later events must
    still not open a second incident (the alerts topic says the group is quiet)."""
    ip = targets["ip"]

    def send(numbers: range) -> None:
        _send_failed_logins(settings, ip, numbers)

    send(range(5))
    first = _siem_loop(settings, pg_dsn)
    with running(first):
        read_until(settings, topics.ALERTS, lambda m: len(m) >= 1)
        wait_until(lambda: first.stats.written == 5, 60, "5 events seen")
    send(range(5, 10))  # the same incident goes on (seconds 5-9 of a 5-minute window)
    second = _siem_loop(settings, pg_dsn)
    second.sink.rewind_ms = 0  # nothing read again: only the alerts topic can tell
    with running(second):
        wait_until(lambda: second.stats.written == 5, 60, "the 5 new events")
    assert not any(loop.error for loop in (first, second))
    assert second.sink.correlator.stats.absorbed == 5
    assert topic_size(settings, topics.ALERTS) == 1


def test_responses_are_retried_while_redis_is_down_and_the_alert_is_published_once(
        settings, pg_dsn, targets):
    ip = targets["ip"]
    down = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    sink = SiemSink(settings, Responder(down, pg_dsn), load_rules(RULES_FILE))
    sink.producer = Producer(settings.kafka.producer_conf())  # setup() would fail: Redis down
    batch = [Record(topics.SECURITY_EVENTS, e, None, "t", 0, i) for i, e in
             enumerate(_failed_logins(ip, range(5)))]
    with pytest.raises(SinkUnavailableError):
        sink.write(batch)
    up = redis_lib.Redis.from_url(settings.redis.dsn)
    sink.responder = Responder(up, pg_dsn)
    sink.write(batch)  # the runner's retry: same batch
    sink.write(batch)  # and a redelivery after that
    published = read_until(settings, topics.ALERTS, lambda m: len(m) >= 1)
    assert topic_size(settings, topics.ALERTS) == 1
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.ALERTS)
    alert = codec.decode(published[0].value())
    assert alert["responses"][0]["status"] == "done"
    assert Blocklist(up).contains("ip", ip)
    sink.close()


def _alert(n: int, rule: str, *plans: Plan) -> Alert:
    return Alert(f"alrt-{rule}-{n}-{random.random()}", rule, rule, "g", "HIGH", 1, 0, 0, (),
                 plans)  # fmt: skip


def test_repeat_offenders_are_blocked_longer_each_time_and_never_for_good(
        settings, pg_dsn, redis_client, targets):
    hour = 3_600_000
    policy = RepeatPolicy(factor=2.0, max_ttl_ms=4 * hour)
    responder = Responder(redis_client, pg_dsn, policy=policy)
    ip, wallet, admin = targets["ip"], targets["wallet"], targets["admin"]
    plans = (Plan("block_ip", ip, hour), Plan("blacklist_wallet", wallet, hour),
             Plan("lock_account", admin, hour))  # fmt: skip
    ttls = []
    for n in range(4):
        alert = _alert(n, "brute_force", *plans)
        responses = responder.execute(alert, {})
        assert [r["status"] for r in responses] == ["done"] * 3
        expiries = {r["action"]: r["expires_at"] for r in responses}
        ttls.append(round((expiries["block_ip"] - datetime.now(UTC)).total_seconds() / 3600))
        assert responder.execute(alert, {})[0]["expires_at"] >= expiries["block_ip"]  # a retry
    assert ttls == [1, 2, 4, 4]  # doubling per offence, capped; the retries did not count
    [entry] = [e for e in Blocklist(redis_client).list("ip") if e.value == ip]
    assert entry.expires_at_ms is not None and "offence 4" in entry.reason
    [(expires,)] = _rows(pg_dsn, "SELECT expires_at FROM blacklisted_wallets")
    assert expires is not None
    assert 3.9 * 3600 < redis_client.pttl(redis_keys.locked(admin)) / 1000 <= 4 * 3600
    plan_without_ttl = Plan("block_ip", ip, None)  # not from a rules file: still expires
    [response] = responder.execute(_alert(9, "manual", plan_without_ttl), {})
    assert response["expires_at"] is not None
