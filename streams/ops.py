"""Operator and consumer views of the topics: consumer-group lag and a decision tail."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from confluent_kafka import Consumer

from infra import topics
from infra.lag import LagProbe
from infra.settings import Settings
from schemas.codec import AvroCodec, DecodeError
from schemas.registry import registry_from_settings


def group_lag(settings: Settings, group: str, timeout: float = 10.0) -> list[dict]:
    """Per partition of every Sentinel topic the group has offsets on: committed offset, end
    offset, lag in records and in seconds (``infra.lag``)."""
    names = [topics.full_name(s, settings.kafka.topic_prefix) for s in topics.ALL]
    probe = LagProbe(settings, group, names, only_committed=True, timeout=timeout)
    try:
        return [{"topic": r.topic, "partition": r.partition, "committed": r.committed,
                 "end": r.end, "lag": r.records, "seconds": r.seconds} for r in probe.measure()]
    finally:
        probe.close()


def tail_decisions(
    settings: Settings, from_beginning: bool = False, idle_s: float | None = None
) -> Iterator[dict]:
    """Decisions as they arrive (a fresh consumer group, nothing committed)."""
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.DECISIONS)
    reset = "earliest" if from_beginning else "latest"
    conf = settings.kafka.consumer_conf(f"tail-{uuid.uuid4().hex[:8]}", **{"auto.offset.reset": reset})
    consumer = Consumer(conf)
    consumer.subscribe([topics.full_name(topics.DECISIONS, settings.kafka.topic_prefix)])
    idle = 0.0
    try:
        while idle_s is None or idle < idle_s:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                idle += 0.5
                continue
            idle = 0.0
            try:
                yield codec.decode(msg.value())
            except DecodeError as exc:
                yield {"error": str(exc), "offset": msg.offset()}
    finally:
        consumer.close()


def format_decision(d: dict) -> str:
    reasons = ", ".join(r["code"] for r in d.get("reasons", [])[:3]) or "-"
    return (f"{d['purchase_id']:<24} {d['wallet'][:12]}…  {d['decision']:<13} "
            f"score={d['score']:.3f} model={d['model_score']:.3f} rules={d['rule_score']:.3f} "
            f"{d['latency_ms']:7.1f} ms  {reasons}")
