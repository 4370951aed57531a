"""What Kafka says about Sentinel's consumers (sync, confluent-kafka; run in a thread): each
group's state and members, lag per partition in records and in seconds (the age of the
oldest unread record), and dead letters per topic."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from infra import topics
from infra.settings import Settings
from streams.ops import group_lag

SINKS = ("postgres", "redis", "siem")


def sentinel_groups(settings: Settings) -> dict[str, str]:
    """Group id -> service, for the worker and the sink loops (sinks/runner.py names)."""
    prefix = settings.kafka.topic_prefix
    return {settings.stream.app_id: "worker",
            **{f"{prefix}sentinel-sink-{s}": f"sink {s}" for s in SINKS}}  # fmt: skip


def describe_groups(admin: AdminClient, groups: list[str], timeout: float) -> dict[str, dict]:
    out = {}
    for group, future in admin.describe_consumer_groups(groups, request_timeout=timeout).items():
        try:
            described = future.result(timeout=timeout)
            out[group] = {"state": described.state.name, "members": len(described.members)}
        except Exception as exc:  # noqa: BLE001 - an unknown group is a state, not an error
            out[group] = {"state": f"unknown ({type(exc).__name__})", "members": 0}
    return out


def lag_seconds(settings: Settings, rows: list[dict], timeout: float = 2.0) -> None:
    """Set ``lag_s`` on each row: now minus the timestamp of the first unread record."""
    behind = [r for r in rows if r["lag"] > 0]
    for row in rows:
        row["lag_s"] = 0.0
    if not behind:
        return
    consumer = Consumer(settings.kafka.consumer_conf(f"console-peek-{uuid.uuid4().hex[:8]}"))
    try:
        consumer.assign([TopicPartition(r["topic"], r["partition"], r["committed"]) for r in behind])
        wanted = {(r["topic"], r["partition"]): r for r in behind}
        deadline = time.monotonic() + timeout
        while wanted and time.monotonic() < deadline:
            for msg in consumer.consume(len(wanted), 0.2):
                row = wanted.pop((msg.topic(), msg.partition()), None)
                if row is not None and msg.error() is None:
                    row["lag_s"] = max(0.0, time.time() - msg.timestamp()[1] / 1000)
                    consumer.pause([TopicPartition(msg.topic(), msg.partition())])
    finally:
        consumer.close()


def dead_letters(settings: Settings, admin: AdminClient, timeout: float) -> dict[str, int]:
    """Records held in each dead-letter topic (high minus low watermark)."""
    prefix = settings.kafka.topic_prefix
    existing = admin.list_topics(timeout=timeout).topics
    consumer = Consumer(settings.kafka.consumer_conf(f"console-dlq-{uuid.uuid4().hex[:8]}"))
    out = {}
    try:
        for spec in topics.SOURCES:
            name = topics.full_name(topics.dlq(spec), prefix)
            if name not in existing:
                continue
            total = 0
            for p in existing[name].partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(name, p), timeout=timeout)
                total += max(0, high - low)
            out[spec.name] = total
    finally:
        consumer.close()
    return out


def snapshot(settings: Settings, timeout: float = 3.0) -> dict:
    """Groups, per-partition lag and dead letters, with when it was taken."""
    admin = AdminClient(settings.kafka.as_confluent())
    groups = sentinel_groups(settings)
    states = describe_groups(admin, list(groups), timeout)
    out = {"taken_at": time.time(), "groups": [], "dead_letters": dead_letters(settings, admin, timeout)}
    for group, service in groups.items():
        rows = group_lag(settings, group, timeout)
        lag_seconds(settings, rows)
        out["groups"].append({
            "group": group, "service": service, **states[group], "partitions": rows,
            "lag": sum(r["lag"] for r in rows),
            "lag_s": max((r["lag_s"] for r in rows), default=0.0),
            "committed": sum(r["committed"] for r in rows),
        })  # fmt: skip
    return out
