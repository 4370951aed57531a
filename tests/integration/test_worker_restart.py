"""Kill the worker (SIGKILL) mid-stream and start it again: every purchase ends with a decision,
and the per-wallet windowed state rebuilt from the changelog equals an uninterrupted run's."""

from __future__ import annotations

import time

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from infra import topics
from models.simulator import SimConfig, simulate
from processors import statecodec
from processors.features import FeatureEngine
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from streams.ops import group_lag
from tests.support.kafka import Worker, decided_ids, produce

pytestmark = pytest.mark.integration


def simulated_purchases(n: int) -> list[dict]:
    out = []
    for kind, record in simulate(SimConfig(seed=5, days=2, n_users=8000, n_shows=20)):
        if kind == "purchase":
            out.append(record)
            if len(out) == n:
                return out
    return out


def latest_changelog_values(settings, topic: str) -> dict:
    """The last value per key of a changelog topic (what a restarted worker recovers),
    decoded; a key whose last record is a tombstone is absent."""
    consumer = Consumer(settings.kafka.consumer_conf(f"{topic}-reader"))
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), 10)[1]
                for p in meta.partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p, end in ends.items() if end])
        latest, seen = {}, dict.fromkeys(ends, 0)
        while any(seen[p] < end for p, end in ends.items()):
            msg = consumer.poll(5)
            assert msg is not None, f"changelog {topic} ended early: {seen} of {ends}"
            if msg.error() is None:
                key = orjson.loads(msg.key())
                if msg.value() is None:
                    latest.pop(key, None)
                else:
                    latest[key] = statecodec.decode(msg.value())
                seen[msg.partition()] = msg.offset() + 1
        return latest
    finally:
        consumer.close()


def purchases_committed(settings, group: str) -> tuple[int, list[dict]]:
    """The purchases ``group`` has committed (its offsets summed over the partitions), and
    the ``group_lag`` rows of the purchases topic."""
    name = topics.full_name(topics.PURCHASES, settings.kafka.topic_prefix)
    rows = [r for r in group_lag(settings, group) if r["topic"] == name]
    return sum(r["committed"] for r in rows), rows


def committed_to_end(settings, group: str, total: int, timeout: float, check) -> None:
    """Until ``group`` has committed all ``total`` records of the purchases topic (its states
    written before: a batch's offsets are committed after its held states), checking the
    worker with ``check``; TimeoutError with the lag after ``timeout``. Each look asks the
    broker for the group's offsets (a round trip), which paces the loop."""
    deadline = time.monotonic() + timeout
    while True:
        committed, rows = purchases_committed(settings, group)
        if committed == total:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"purchases not committed to their end: {rows}")
        check()


def test_killed_worker_recovers_every_decision_and_its_state(settings, env, tmp_path):
    purchases = simulated_purchases(1500)
    assert len(purchases) == 1500
    registry = registry_from_settings(settings)
    codec = AvroCodec.for_topic(registry, topics.PURCHASES)
    records = [(p["wallet"], codec.encode(p)) for p in purchases]
    produce(settings, topics.PURCHASES, records[:750])

    ids = [p["purchase_id"] for p in purchases]
    first = Worker(env, tmp_path / "first.log")
    try:
        decided_ids(settings, set(ids[: len(ids) // 4]), 90, first.assert_alive)
        # the rest while it runs: the kill below lands with records not yet decided (a worker
        # as fast as this one decided a whole pre-loaded topic before the kill landed)
        produce(settings, topics.PURCHASES, records[750:])
    finally:
        first.kill()  # SIGKILL mid-stream: no clean shutdown, no final commit
    committed, lag_at_kill = purchases_committed(settings, env["SENTINEL_APP_ID"])
    assert committed < len(purchases), f"killed after everything was committed: {lag_at_kill}"
    second = Worker(env, tmp_path / "second.log")
    try:
        counts = decided_ids(settings, set(ids), 120, second.assert_alive)
        # The first worker's last batches may have been decided with their states still
        # held: neither in the changelog nor their offsets committed. The second worker
        # takes those records again; their states are in the changelog once it has
        # committed the purchases to their end.
        committed_to_end(settings, env["SENTINEL_APP_ID"], len(purchases), 60,
                         second.assert_alive)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; committed at kill: {lag_at_kill}") from exc
    finally:
        second.stop()
    assert set(counts) == set(ids)

    engine = FeatureEngine()
    for purchase in purchases:
        engine.process("purchase", purchase)
    changelog = f"{env['SENTINEL_APP_ID']}-wallet_to_state-changelog"
    recovered = latest_changelog_values(settings, changelog)
    assert recovered.keys() == engine.wallets.keys()
    assert recovered == engine.wallets
