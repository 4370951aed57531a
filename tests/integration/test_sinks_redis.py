"""The Redis sink and the blocklists on the real Redis: newest decision wins, KPIs count each
purchase once, blocklist entries expire one by one."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta

import pytest
import redis as redis_lib

from infra import topics
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from sinks.base import RETRYABLE, SinkUnavailableError
from sinks.blocklist import Blocklist
from sinks.config import SinkSettings
from sinks.redis import RedisSink, kpi_bucket
from sinks.runner import SinkLoop
from sinks.testing import T0, decision, records, running, wait_until
from tests.support.kafka import produce
from tests.support.redis_server import private_redis

pytestmark = pytest.mark.integration


@pytest.fixture
def clean(redis_client):
    """Purchase ids and KPI minutes of this test only (Redis is shared by the session)."""
    tag = uuid.uuid4().hex[:8]
    minute = T0 + timedelta(days=int(tag, 16) % 3000)  # a minute of its own
    yield tag, minute
    keys = redis_client.keys(f"sentinel:decision:{tag}-*") + [kpi_bucket(minute)]
    redis_client.delete(*keys)


def _decisions(tag, minute, n: int, **overrides) -> dict:
    d = decision(n, purchase_id=f"{tag}-{n}", occurred_at=minute, **overrides)
    d.setdefault("decided_at", minute)
    return d


def test_newest_decision_wins_and_kpis_count_once(stack, redis_client, clean):
    tag, minute = clean
    sink = RedisSink.from_url(stack.redis.dsn)
    sink.setup()
    old = _decisions(tag, minute, 1, decision="APPROVED", decided_at=minute + timedelta(seconds=1))
    new = _decisions(tag, minute, 1, decision="BLOCKED", decided_at=minute + timedelta(seconds=5),
                     latency_ms=40.0)
    other = _decisions(tag, minute, 2, decision="REQUIRE_2FA", latency_ms=10.0)
    try:
        sink.write(records(topics.DECISIONS, [new, other]))
        sink.write(records(topics.DECISIONS, [old, new, other]))  # redelivered, older first
    finally:
        sink.close()
    stored = json.loads(redis_client.get(f"sentinel:decision:{tag}-1"))
    assert stored["decision"] == "BLOCKED"
    assert stored["decided_at"] == int((minute + timedelta(seconds=5)).timestamp() * 1000)
    assert stored["reasons"][0]["code"] == "velocity_1h"
    assert set(stored) >= {"decision_id", "purchase_id", "wallet", "score", "model_version"}
    ttl = redis_client.ttl(f"sentinel:decision:{tag}-1")
    assert 7 * 86400 - 60 < ttl <= 7 * 86400
    kpi = {k.decode(): v.decode() for k, v in redis_client.hgetall(kpi_bucket(minute)).items()}
    assert kpi == {"total": "2", "BLOCKED": "1", "REQUIRE_2FA": "1", "latency_ms_sum": "50"}
    assert 2 * 86400 - 60 < redis_client.ttl(kpi_bucket(minute)) <= 2 * 86400


def test_unreachable_redis_is_retryable():
    sink = RedisSink.from_url("redis://127.0.0.1:1/0")
    with pytest.raises(SinkUnavailableError):
        sink.setup()


def test_redis_loop_writes_every_decision_of_the_topic(settings, redis_client, clean):
    tag, minute = clean
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.DECISIONS)
    batch = [_decisions(tag, minute, n) for n in range(1200)]
    produce(settings, topics.DECISIONS, [(d["wallet"], codec.encode(d)) for d in batch])
    produce(settings, topics.DECISIONS, [(b"k", b"\x00garbage")])
    redis_client.hset(f"sentinel:decision:{tag}-7", "not", "a string")  # WRONGTYPE for p 7
    loop = SinkLoop(settings, RedisSink.from_url(settings.redis.dsn), SinkSettings())
    with running(loop):
        wait_until(lambda: loop.stats.written == 1199 and loop.stats.dead_letters == 2, 60,
                   "decisions written, the bad bytes and the refused one dead-lettered")
    assert loop.error is None
    assert int(redis_client.hget(kpi_bucket(minute), "total")) == 1199
    assert redis_client.exists(f"sentinel:decision:{tag}-1199") == 1


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def namespace(redis_client):
    """Blocklist keys of this test only, deleted after."""
    ns = f"t{uuid.uuid4().hex[:10]}"
    yield ns
    keys = redis_client.keys(f"{ns}:*")
    if keys:
        redis_client.delete(*keys)


def test_blocklist_entries_expire_one_by_one(redis_client, namespace):
    clock = Clock(1_800_000_000.0)
    bl = Blocklist(redis_client, clock, namespace)
    bl.add("ip", "203.0.113.9", 10, "brute force")
    bl.add("ip", "2001:DB8::1", 100, "ddos")
    bl.add("wallet", "0xABC", None, "fraud ring")
    query = ["203.0.113.9", "2001:db8::1", "198.51.100.1", "not-an-ip"]
    assert bl.contains_many("ip", query) == {"203.0.113.9", "2001:db8::1"}
    assert bl.contains("wallet", "0xabc")

    clock.now += 10  # exactly at the first entry's expiry: gone
    assert bl.contains_many("ip", query) == {"2001:db8::1"}
    assert [e.value for e in bl.list("ip")] == ["2001:db8::1"]
    assert bl.purge("ip") == 1
    assert redis_client.hget(f"{namespace}:blocklist:ip:meta", "203.0.113.9") is None

    clock.now += 1000  # permanent entries stay
    assert bl.contains_many("ip", query) == set()
    assert [(e.value, e.reason, e.expires_at_ms) for e in bl.list("wallet")] == [
        ("0xabc", "fraud ring", None)
    ]
    assert bl.remove("wallet", "0xAbC") is True
    assert bl.list("wallet") == []
    with pytest.raises(ValueError):
        bl.add("ip", "300.1.1.1", 10, "bad")
    with pytest.raises(ValueError):
        bl.add("device", "x", 10, "bad")


def test_blocklist_ips_are_canonical_like_the_edge(redis_client, namespace):
    bl = Blocklist(redis_client, namespace=namespace)
    bl.add("ip", "::ffff:185.220.100.0", 60, "tor exit, written mapped")
    assert bl.contains_many("ip", ["185.220.100.0", "::FFFF:185.220.100.0"]) == {
        "185.220.100.0", "::FFFF:185.220.100.0"}  # fmt: skip
    assert [e.value for e in bl.list("ip")] == ["185.220.100.0"]
    with pytest.raises(ValueError):
        bl.add("ip", "fe80::1%eth0", 60, "zone ids are refused at the edge too")


def test_blocklist_expiry_on_the_real_clock(redis_client, namespace):
    bl = Blocklist(redis_client, namespace=namespace)
    bl.add("ip", "192.0.2.1", 0.3, "short")
    bl.add("ip", "192.0.2.2", 3600, "long")
    assert bl.contains_many("ip", ["192.0.2.1", "192.0.2.2"]) == {"192.0.2.1", "192.0.2.2"}
    wait_until(lambda: bl.contains_many("ip", ["192.0.2.1", "192.0.2.2"]) == {"192.0.2.2"},
               10, "the short entry expired")
    refreshed = bl.add("ip", "192.0.2.2", 7200, "long, refreshed")
    assert bl.list("ip")[0].expires_at_ms == refreshed.expires_at_ms


def _misconfigured(server) -> None:
    """Make the server refuse writes with MISCONF: its last background save failed (the
    directory it saves into is gone) and it stops writes on such a failure."""
    gone = server.home / "gone"
    gone.mkdir()
    server.client.config_set("dir", str(gone))
    gone.rmdir()
    server.client.config_set("save", "3600 1")  # writes stop only when saving is configured
    server.client.config_set("stop-writes-on-bgsave-error", "yes")
    server.client.bgsave()
    wait_until(lambda: server.client.info("persistence")["rdb_last_bgsave_status"] == "err",
               10, "a failed background save")
    with pytest.raises(redis_lib.ResponseError, match="MISCONF"):
        server.client.set("probe", "1")


def test_server_wide_errors_are_retryable_not_dead_letters(settings, clean):
    """MISCONF (cannot persist) and BUSY (a script runs) refuse every write of the batch: the
    sink must back off and retry, never dead-letter the decisions."""
    tag, minute = clean
    with private_redis() as server:
        sink = RedisSink.from_url(server.url)
        sink.setup()
        batch = records(topics.DECISIONS, [_decisions(tag, minute, n) for n in range(5)])
        _misconfigured(server)
        with pytest.raises(RETRYABLE) as caught:
            sink.write(batch)
        assert "MISCONF" in str(caught.value)
        server.client.config_set("stop-writes-on-bgsave-error", "no")

        server.client.config_set("busy-reply-threshold", "50")
        spinner = threading.Thread(target=_spin, args=(server.port,), daemon=True)
        spinner.start()
        wait_until(lambda: _busy(server.port), 10, "a script keeping the server busy")
        try:
            with pytest.raises(RETRYABLE) as caught:
                sink.write(batch)
            assert "BUSY" in str(caught.value)
        finally:
            redis_lib.Redis(port=server.port).script_kill()
            spinner.join(10)
        sink.write(batch)
        assert server.client.exists(f"sentinel:decision:{tag}-4") == 1
        sink.close()


def test_the_loop_backs_off_through_misconf_and_dead_letters_nothing(settings, clean):
    tag, minute = clean
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.DECISIONS)
    with private_redis() as server:
        _misconfigured(server)
        batch = [_decisions(tag, minute, n) for n in range(20)]
        produce(settings, topics.DECISIONS, [(d["wallet"], codec.encode(d)) for d in batch])
        loop = SinkLoop(settings, RedisSink.from_url(server.url), SinkSettings())
        with running(loop):
            wait_until(lambda: loop.stats.retries >= 2, 30, "retries while Redis cannot persist")
            assert (loop.stats.written, loop.stats.dead_letters) == (0, 0)
            server.client.config_set("stop-writes-on-bgsave-error", "no")
            wait_until(lambda: loop.stats.written == 20, 30, "every decision written")
        assert loop.error is None and loop.stats.dead_letters == 0


def _spin(port: int) -> None:
    try:
        redis_lib.Redis(port=port).eval("while true do end", 0)
    except redis_lib.ResponseError:
        pass  # killed by SCRIPT KILL


def _busy(port: int) -> bool:
    try:
        redis_lib.Redis(port=port, socket_timeout=1).ping()
        return False
    except redis_lib.BusyLoadingError:
        return False
    except redis_lib.ResponseError as exc:
        return "BUSY" in str(exc)
