"""Wallet expiry in the worker's table: an idle buyer is summarised and an idle auth-only wallet
deleted, on the changelog too (summary, tombstone); a restarted worker does not bring the
deleted wallet back, and decides the summarised buyer's next purchase from its summary (which
it recovered to its summary store on disk, streams/summary_store.py)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from confluent_kafka import KafkaException, Producer

from infra import topics
from processors.expiry import is_summary
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from streams.ops import group_lag
from tests.integration.test_worker_restart import latest_changelog_values
from tests.support.kafka import Worker, read_until
from tests.support.records import T0, purchase

pytestmark = pytest.mark.integration

BUYER, AUTH_ONLY, LATER = "0x" + "b" * 40, "0x" + "a" * 40, "0x" + "c" * 40
PARTITION = 0  # one wallet-table partition: its watermark is what expires the others


def auth(wallet: str, when, kind: str, n: int) -> dict:
    return {"event_id": f"auth-{n}", "occurred_at": when, "kind": kind, "user_id": f"u-{n}",
            "wallet": wallet, "ip": "203.0.113.9", "geo": None, "device_id": None,
            "user_agent": None}  # fmt: skip


def send(settings, spec: topics.TopicSpec, records: list[dict], key: str) -> None:
    codec = AvroCodec.for_topic(registry_from_settings(settings), spec)
    producer = Producer(settings.kafka.producer_conf())
    name = topics.full_name(spec, settings.kafka.topic_prefix)
    for record in records:
        producer.produce(name, codec.encode(record), record[key], partition=PARTITION)
    assert producer.flush(30) == 0


def changelog_until(settings, topic: str, done, worker: Worker, timeout: float = 90) -> dict:
    """The latest changelog value per key, read again until ``done(latest)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        worker.assert_alive()
        try:
            latest = latest_changelog_values(settings, topic)
        except KafkaException:  # the worker is still creating the changelog topic
            latest = {}
        if done(latest):
            return latest
        if time.monotonic() > deadline:
            raise AssertionError(f"changelog never reached the state expected: {latest}")
        time.sleep(1)


def committed(settings, group: str, worker: Worker, timeout: float = 60) -> None:
    """Wait until the worker's group has committed every record it was given."""
    deadline = time.monotonic() + timeout
    while True:
        worker.assert_alive()
        lag = [r for r in group_lag(settings, group) if r["end"]]
        if lag and all(r["committed"] == r["end"] for r in lag):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"offsets not committed: {lag}")
        time.sleep(0.5)


def test_idle_wallets_expire_on_the_changelog_and_stay_deleted_after_a_restart(
    settings, env, tmp_path
):
    changelog = f"{env['SENTINEL_APP_ID']}-wallet_to_state-changelog"
    bought = purchase(1, wallet=BUYER, purchase_id="p-buyer")
    send(settings, topics.PURCHASES, [bought], "wallet")
    send(settings, topics.AUTH_EVENTS, [auth(AUTH_ONLY, T0, "LOGIN_FAILED", 1)], "wallet")
    first = Worker(env, tmp_path / "first.log")
    try:
        changelog_until(settings, changelog, lambda s: {BUYER, AUTH_ONLY} <= s.keys(), first)
        nine_days = T0 + timedelta(days=9)
        send(settings, topics.AUTH_EVENTS, [auth(LATER, nine_days, "LOGIN_OK", 2)], "wallet")
        latest = changelog_until(settings, changelog,
                                 lambda s: LATER in s and AUTH_ONLY not in s, first)
        committed(settings, env["SENTINEL_APP_ID"], first)  # or the records come again
    finally:
        first.kill()
    summary = latest[BUYER]
    assert is_summary(summary) and summary.purchases_total == 1
    assert summary.first_seen_ms is not None and summary.holdings

    second = Worker(env, tmp_path / "second.log")
    try:  # an auth event that the deleted wallet's old state would have dated to T0
        hour_later = T0 + timedelta(hours=1)
        send(settings, topics.AUTH_EVENTS, [auth(AUTH_ONLY, hour_later, "LOGIN_OK", 3)], "wallet")
        latest = changelog_until(settings, changelog, lambda s: AUTH_ONLY in s, second)
        # the summarised buyer buys again: decided from its summary, recovered to disk
        back = purchase(2, wallet=BUYER, purchase_id="p-buyer-back",
                        occurred_at=T0 + timedelta(days=10))
        send(settings, topics.PURCHASES, [back], "wallet")
        codec = AvroCodec.for_topic(registry_from_settings(settings), topics.DECISIONS)
        read = read_until(settings, topics.DECISIONS, lambda m: any(
            codec.decode(d.value())["purchase_id"] == "p-buyer-back" for d in m), 90,
            second.assert_alive)
    finally:
        second.stop()
    came_back = latest[AUTH_ONLY]
    stamp = int(hour_later.timestamp() * 1000)
    assert (came_back.first_seen_ms, came_back.login_ok_ms) == (stamp, stamp)
    assert came_back.failed_logins == [] and came_back.applied == ["auth-3"]
    features = next(d["features"] for d in (codec.decode(m.value()) for m in read)
                    if d["purchase_id"] == "p-buyer-back")
    first_seen = bought["occurred_at"]
    assert features["purchases_total"] == 1.0  # the purchase before the summary
    assert features["wallet_age_days"] == pytest.approx(
        (back["occurred_at"] - first_seen).total_seconds() / 86400)
