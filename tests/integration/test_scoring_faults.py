"""Nothing escapes a batch, and Redis going away does not stop scoring:

- a purchase that decodes but makes the feature code raise (a currency without a rate) is
  dead-lettered with its reason, and every other purchase of its batch is decided;
- with Redis stopped mid-stream, the worker keeps deciding with its last blocklist snapshot
  (a wallet blocked before the outage is still BLOCKED), says so in the metric
  ``sentinel_scoring_redis_fallback`` and in one ``blocklist_stale`` security event."""

from __future__ import annotations

import urllib.request

import pytest

from infra import topics
from infra.observe import free_port
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from sinks.blocklist import Blocklist
from tests.support.kafka import Worker, produce, read_decisions, read_until
from tests.support.records import purchase
from tests.support.redis_server import private_redis

pytestmark = pytest.mark.integration


def publish(settings, records: list[dict]) -> None:
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.PURCHASES)
    produce(settings, topics.PURCHASES, [(p["wallet"], codec.encode(p)) for p in records])


def test_a_failing_record_is_dead_lettered_and_its_batch_decided(settings, env, tmp_path):
    good = [purchase(n) for n in range(40)]
    bad = purchase(99, currency="XTS")  # ISO 4217 "testing" code: no rate in the table
    publish(settings, good[:20] + [bad] + good[20:])
    worker = Worker(env, tmp_path / "worker.log")
    try:
        decided = read_decisions(settings, {p["purchase_id"] for p in good}, 90,
                                 worker.assert_alive)
        dead = read_until(settings, topics.dlq(topics.PURCHASES), lambda m: len(m) >= 1, 30)
    finally:
        worker.stop()
    assert set(decided) == {p["purchase_id"] for p in good}
    letter = AvroCodec.for_topic(registry_from_settings(settings),
                                 topics.dlq(topics.PURCHASES)).decode(dead[0].value())
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.PURCHASES)
    assert letter["original_value"] == codec.encode(bad)
    assert "XTS" in letter["error_message"], letter


def metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exported")


def test_scoring_goes_on_with_the_last_blocklist_snapshot_while_redis_is_down(
        settings, env, tmp_path):
    blocked_wallet = purchase(500)["wallet"]
    first = [purchase(n) for n in range(30)]
    second = [purchase(n) for n in range(30, 60)] + [purchase(500)]
    port = free_port()
    with private_redis() as redis_server:
        Blocklist(redis_server.client).add("wallet", blocked_wallet, None, "test")
        worker_env = {**env, "REDIS_URL": redis_server.url, "METRICS_WORKER_PORT": str(port),
                      "SENTINEL_BLOCKLIST_REFRESH_S": "0.2"}
        worker = Worker(worker_env, tmp_path / "worker.log")
        try:
            publish(settings, first)
            read_decisions(settings, {p["purchase_id"] for p in first}, 90, worker.assert_alive)
            assert metric(port, "sentinel_scoring_redis_fallback") == 0
            redis_server.client.shutdown(nosave=True)
            publish(settings, second)
            decided = read_decisions(settings, {p["purchase_id"] for p in first + second}, 90,
                                     worker.assert_alive)
            assert metric(port, "sentinel_scoring_redis_fallback") == 1
            events = read_until(settings, topics.SECURITY_EVENTS, lambda m: any(
                b"blocklist_stale" in x.value() for x in m), 30, worker.assert_alive)
        finally:
            worker.stop()
    assert all(len(copies) == 1 for copies in decided.values())
    assert decided[purchase(500)["purchase_id"]][0]["decision"] == "BLOCKED"
    stale = [m for m in events if b"blocklist_stale" in m.value()]
    assert len(stale) == 1
