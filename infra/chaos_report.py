"""What the chaos run measures once everything caught up, from the system of record and the
topics themselves:

- ``decided``: accepted purchases with a row in ``decisions``; ``lost``: accepted, no row;
- ``duplicated``: purchases with more than one decision on the topic that differ (verdict,
  scores, features or reasons; an identical redelivered copy is not a duplicate), with how
  many changed verdict and which features differed;
- ``alerts_duplicated``: incidents alerted twice (two alert ids for one rule and group whose
  windows overlap); ``alerts_republished``: alert ids on the topic more than once (identical
  copies, stored once);
- ``dead_letters``: per dead-letter topic and error class;
- ``lost_where``: when purchases are lost, where they stopped: decided on the topic but not
  in PostgreSQL (a sink's fault), or never decided, per purchases partition with the workers'
  committed offset and the partition's end (a stuck partition's fault).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import Consumer, KafkaException, TopicPartition

from infra import admin, topics
from infra.settings import Settings
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings

COMPARED = ("decision", "score", "model_score", "rule_score", "features")


def essence(decision: dict) -> tuple:
    reasons = tuple(r["code"] for r in decision["reasons"])
    return (*(repr(decision[k]) for k in COMPARED), reasons)


def read_all(settings: Settings, spec: topics.TopicSpec, timeout: float = 60.0) -> list[bytes]:
    """Every value on ``spec`` up to its current end."""
    return [value for _, _, value in read_all_placed(settings, spec, timeout)]


def read_all_placed(settings: Settings, spec: topics.TopicSpec,
                    timeout: float = 60.0) -> list[tuple[int, int, bytes]]:
    """(partition, offset, value) of every record on ``spec`` up to its current end."""
    name = topics.full_name(spec, settings.kafka.topic_prefix)
    consumer = Consumer(settings.kafka.consumer_conf(f"chaos-read-{uuid.uuid4().hex[:8]}"))
    try:
        meta = consumer.list_topics(name, timeout=timeout).topics[name]
        ends = {p: _end(consumer, name, p, timeout) for p in meta.partitions}
        consumer.assign([TopicPartition(name, p, 0) for p, end in ends.items() if end])
        got: dict[int, int] = defaultdict(int)
        values: list[tuple[int, int, bytes]] = []
        while any(got[p] < end for p, end in ends.items() if end):
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            got[msg.partition()] = msg.offset() + 1
            values.append((msg.partition(), msg.offset(), msg.value()))
        return values
    finally:
        consumer.close()


def _end(consumer: Consumer, topic: str, partition: int, timeout: float) -> int:
    """The partition's end offset, waiting out a broker that has not elected its leader yet
    (just after a restart)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
        except KafkaException:
            if time.monotonic() >= deadline:
                raise
            time.sleep(1)


def decided(settings: Settings, ids: Iterable[str]) -> set[str]:
    with psycopg.connect(settings.postgres.dsn, connect_timeout=10) as conn:
        rows = conn.execute("SELECT purchase_id FROM decisions WHERE purchase_id = ANY(%s)",
                            (list(ids),)).fetchall()  # fmt: skip
    return {r[0] for r in rows}


def lost_where(settings: Settings, lost: Iterable[str],
               sink_log: Path | None = None) -> dict[str, Any]:
    """Where the ``lost`` purchases stopped: how many never reached the purchases topic
    (answered 202 by the gateway, not written); how many have a decision on the topic
    (decided, not written by the PostgreSQL sink), with, per decisions partition, how many,
    the sink's committed offset and the partition's end, and the sink log's last warnings;
    and for the others, per purchases partition, how many, their first offset, the workers'
    committed offset and the partition's end."""
    lost = set(lost)
    if not lost:
        return {}
    registry = registry_from_settings(settings)
    codec = AvroCodec.for_topic(registry, topics.DECISIONS)
    unstored: dict[int, list[int]] = defaultdict(list)
    on_topic: set[str] = set()
    for partition, offset, value in read_all_placed(settings, topics.DECISIONS):
        pid = codec.decode(value)["purchase_id"]
        on_topic.add(pid)
        if pid in lost:
            unstored[partition].append(offset)
    codec = AvroCodec.for_topic(registry, topics.PURCHASES)
    undecided: dict[int, list[int]] = defaultdict(list)
    published: set[str] = set()
    for partition, offset, value in read_all_placed(settings, topics.PURCHASES):
        pid = codec.decode(value)["purchase_id"]
        published.add(pid)
        if pid in lost and pid not in on_topic:
            undecided[partition].append(offset)
    prefix = settings.kafka.topic_prefix
    return {"not_published": len(lost - published), "decided_not_stored": len(lost & on_topic),
            "not_stored_by_partition": _partitions(settings, topics.DECISIONS, unstored,
                                                   f"{prefix}sentinel-sink-postgres"),
            "sink_group": _group(settings, f"{prefix}sentinel-sink-postgres") if unstored else {},
            "sink_warnings": _warnings(sink_log) if unstored and sink_log else [],
            "never_decided": _partitions(settings, topics.PURCHASES, undecided,
                                         settings.stream.app_id)}  # fmt: skip


def _partitions(settings: Settings, spec: topics.TopicSpec, lost: dict[int, list[int]],
                group: str) -> dict[str, dict[str, int]]:
    """Per partition of ``spec`` holding lost records: how many, the first one's offset,
    ``group``'s committed offset and the partition's end."""
    if not lost:
        return {}
    name = topics.full_name(spec, settings.kafka.topic_prefix)
    consumer = Consumer(settings.kafka.consumer_conf(group))
    try:
        committed = consumer.committed([TopicPartition(name, p) for p in lost], timeout=30)
        return {str(tp.partition): {"lost": len(lost[tp.partition]),
                                    "first_lost_offset": min(lost[tp.partition]),
                                    "committed": tp.offset,
                                    "end": _end(consumer, name, tp.partition, 30)}
                for tp in committed}  # fmt: skip
    finally:
        consumer.close()


def _group(settings: Settings, group: str) -> dict[str, Any]:
    """The group's state and, per member, the decisions partitions it owns (a member that owns
    partitions and does not read them would hold them)."""
    name = topics.full_name(topics.DECISIONS, settings.kafka.topic_prefix)
    client = admin.admin_client(settings)  # held until answered: a temporary one drops it
    try:
        described = client.describe_consumer_groups([group])[group].result(timeout=10)
    except (KafkaException, TimeoutError) as exc:
        return {"error": str(exc)}
    return {"state": described.state.name,
            "members": {m.client_id + " " + m.host: sorted(
                tp.partition for tp in m.assignment.topic_partitions if tp.topic == name)
                for m in described.members}}  # fmt: skip


def _warnings(log: Path, keep: int = 6) -> list[str]:
    """The last ``keep`` warnings and errors the sink logged (librdkafka's connection noise
    left out), shortened: what it met while it did not store."""
    if not log.exists():
        return []
    lines = [line for line in log.read_text(errors="replace").splitlines()
             if (" WARNING " in line or " ERROR " in line or "|SESSTMOUT|" in line
                 or "|MAXPOLL|" in line)]  # fmt: skip
    return [line[:240] for line in lines[-keep:]]


def duplicated(settings: Settings) -> dict[str, Any]:
    """Purchases decided more than once with differing content: how many, how many with a
    changed verdict, which features differed (how often), and a few examples."""
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.DECISIONS)
    copies: dict[str, dict[tuple, dict]] = defaultdict(dict)
    for value in read_all(settings, topics.DECISIONS):
        d = codec.decode(value)
        copies[d["purchase_id"]].setdefault(essence(d), d)
    examples, features = [], Counter()
    for pid, versions in copies.items():
        if len(versions) > 1:
            first, *others = versions.values()
            differing = sorted({k for o in others for k, v in o["features"].items()
                                if first["features"].get(k) != v})  # fmt: skip
            features.update(differing)
            verdicts = sorted({d["decision"] for d in versions.values()})
            examples.append({"purchase_id": pid, "verdicts": verdicts, "features": differing})
    return {"duplicated": len(examples),
            "duplicated_verdict_changed": sum(len(e["verdicts"]) > 1 for e in examples),
            "duplicated_features": dict(features.most_common()),
            "duplicated_examples": examples[:10]}  # fmt: skip


def alerts(settings: Settings) -> dict[str, int]:
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.ALERTS)
    copies: Counter[str] = Counter()
    windows: dict[tuple[str, str], list[tuple]] = defaultdict(list)
    for value in read_all(settings, topics.ALERTS):
        a = codec.decode(value)
        copies[a["alert_id"]] += 1
        if copies[a["alert_id"]] == 1:
            windows[(a["rule"], a["group_key"])].append((a["first_seen"], a["last_seen"]))
    overlapping = sum(_overlaps(sorted(spans)) for spans in windows.values())
    return {"alerts": len(copies), "alerts_duplicated": overlapping,
            "alerts_republished": sum(n > 1 for n in copies.values())}


def _overlaps(spans: list[tuple]) -> int:
    return sum(later[0] <= earlier[1] for earlier, later in zip(spans, spans[1:], strict=False))


def dead_letters(settings: Settings) -> dict[str, dict[str, int]]:
    registry = registry_from_settings(settings)
    out: dict[str, dict[str, int]] = {}
    for source in topics.SOURCES:
        spec = topics.dlq(source)
        codec = AvroCodec.for_topic(registry, spec)
        reasons = Counter(codec.decode(v)["error_class"] for v in read_all(settings, spec))
        if reasons:
            out[spec.name] = dict(reasons)
    return out


def wait_decided(settings: Settings, ids: set[str], timeout_s: float,
                 tend: Callable[[], None], pause: Callable[[float], None]) -> set[str]:
    """Poll the decisions table until every id has a row or ``timeout_s`` passed; ``tend``
    keeps the services up meanwhile."""
    deadline, found = time.monotonic() + timeout_s, set()
    while time.monotonic() < deadline:
        tend()
        try:
            found = decided(settings, ids)
        except psycopg.Error:
            found = found
        if found >= ids:
            break
        pause(2.0)
    return found
