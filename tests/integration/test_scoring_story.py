"""The scoring worker on the real broker and Redis: a scripted story of a bot burst, an
impossible trip, an account takeover, a blocklisted IP and a clean buyer produces exactly the
expected decisions, reasons and security events."""

from __future__ import annotations

import time

import pytest
import redis

from infra import topics
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from sinks.blocklist import Blocklist
from streams.ops import group_lag
from tests.support.kafka import Worker, produce, read_until
from tests.support.models import constant_model_registry
from tests.support.story import BANNED, BANNED_IP, EXPECTED, EXPECTED_SECURITY_EVENTS, story

pytestmark = pytest.mark.integration


def encode(settings, spec, records, key):
    codec = AvroCodec.for_topic(registry_from_settings(settings), spec)
    return [(r[key], codec.encode(r)) for r in records]


def wait_consumed(settings, group: str, spec, worker, timeout: float = 60.0) -> None:
    """Until the worker's group has committed the whole of ``spec``."""
    name = topics.full_name(spec, settings.kafka.topic_prefix)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker.assert_alive()
        rows = [r for r in group_lag(settings, group) if r["topic"] == name]
        if rows and sum(r["end"] for r in rows) and all(r["lag"] == 0 for r in rows):
            return
        worker.exited_within(0.2)
    raise TimeoutError(f"{name} not consumed by {group}")


def run_story(settings, env, models_dir, log_path) -> tuple[list, list]:
    """History first (a live purchase is scored on what the worker has applied so far), then
    the purchases; returns the decision and security event messages."""
    purchases, auth, transfers = story()
    env = {**env, "SENTINEL_MODEL_DIR": str(models_dir)}
    produce(settings, topics.AUTH_EVENTS, encode(settings, topics.AUTH_EVENTS, auth, "wallet"))
    produce(settings, topics.CHAIN_TRANSFERS,
            encode(settings, topics.CHAIN_TRANSFERS, transfers, "to_address"))
    worker = Worker(env, log_path)
    try:
        for spec in (topics.AUTH_EVENTS, topics.CHAIN_TRANSFERS):
            wait_consumed(settings, env["SENTINEL_APP_ID"], spec, worker)
        produce(settings, topics.PURCHASES, encode(settings, topics.PURCHASES, purchases, "wallet"))
        got = read_until(settings, topics.DECISIONS, lambda m: len(m) >= len(purchases), 90,
                         worker.assert_alive)
        events = read_until(settings, topics.SECURITY_EVENTS,
                            lambda m: len(m) >= len(EXPECTED_SECURITY_EVENTS), 30)
    finally:
        worker.stop()
    return got, events


@pytest.fixture
def blocked_ip(stack):
    blocklist = Blocklist(redis.Redis.from_url(stack.redis.dsn))
    blocklist.add("ip", BANNED_IP, ttl_s=600, reason="story test")
    yield BANNED_IP
    blocklist.remove("ip", BANNED_IP)


def test_story_gets_exactly_the_expected_decisions(settings, env, tmp_path, blocked_ip):
    models_dir = constant_model_registry(tmp_path / "models")
    got, events = run_story(settings, env, models_dir, tmp_path / "worker.log")

    registry = registry_from_settings(settings)
    decisions = {d["purchase_id"]: d for d in (
        AvroCodec.for_topic(registry, topics.DECISIONS).decode(m.value()) for m in got)}
    assert set(decisions) == set(EXPECTED)
    for pid, (verdict, reasons) in EXPECTED.items():
        codes = {r["code"] for r in decisions[pid]["reasons"]}
        assert decisions[pid]["decision"] == verdict, (pid, decisions[pid])
        assert reasons <= codes, (pid, codes)
        if not reasons:
            assert codes == set(), (pid, codes)
        assert decisions[pid]["model_version"] == "constant-test"
    security = AvroCodec.for_topic(registry, topics.SECURITY_EVENTS)
    decoded = [security.decode(m.value()) for m in events]
    kinds = {(e["kind"], e["purchase_id"]) for e in decoded}
    assert kinds == EXPECTED_SECURITY_EVENTS
    # the SIEM's fraud-ring rule groups fraud detections by the linked-wallet cluster
    fraud = [e for e in decoded if e["kind"] == "fraud_detected"]
    assert [e["details"]["cluster_id"] for e in fraud] == [f"cluster:{BANNED}"]
    flagged = [d for d in decisions.values() if d["decision"] != "APPROVED"]
    assert all(d["contributions"] is not None for d in flagged)


def test_replay_of_the_story_decides_as_the_live_worker(settings, env, tmp_path, blocked_ip):
    """No training/serving skew: the offline replay (FeatureEngine + decide_batch over the
    topics) gives the live worker's verdicts and reasons, and twice the same decisions."""
    from models.registry import ModelRegistry
    from models.replay import decision_key, read_topics, replay
    from processors.decide import Blocked
    from processors.rules import load_ruleset

    models_dir = constant_model_registry(tmp_path / "models")
    got, _ = run_story(settings, env, models_dir, tmp_path / "worker.log")
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.DECISIONS)
    live = {d["purchase_id"]: d for d in (codec.decode(m.value()) for m in got)}

    model = ModelRegistry(models_dir).load()
    runs = [replay(read_topics(settings), model, load_ruleset(), blocked=Blocked(ips={BANNED_IP}))
            for _ in range(2)]
    assert [decision_key(d) for d in runs[0]] == [decision_key(d) for d in runs[1]]
    replayed = {d["purchase_id"]: d for d in runs[0]}
    assert set(replayed) == set(live)
    for pid, decision in replayed.items():
        assert decision["decision"] == live[pid]["decision"], pid
        assert [r["code"] for r in decision["reasons"]] == [
            r["code"] for r in live[pid]["reasons"]], pid
