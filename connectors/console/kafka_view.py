"""What Kafka says about Sentinel's consumers (sync, confluent-kafka; one thread at a time):
each group's state and members, lag per partition in records and seconds (``infra.lag``,
the age of the oldest unread record), and dead letters per topic.

The client handles are made once and kept (one admin client, one lag probe per group) and
closed by ``close``: a dashboard refreshing every few seconds does not create and destroy
librdkafka instances at that rate.
"""

from __future__ import annotations

import time

from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from infra import topics
from infra.lag import LagProbe
from infra.settings import Settings

SINKS = ("postgres", "redis", "siem")


def sentinel_groups(settings: Settings) -> dict[str, str]:
    """Group id -> service, for the worker and the sink loops (sinks/runner.py names)."""
    prefix = settings.kafka.topic_prefix
    return {settings.stream.app_id: "worker",
            **{f"{prefix}sentinel-sink-{s}": f"sink {s}" for s in SINKS}}  # fmt: skip


class KafkaView:
    def __init__(self, settings: Settings, timeout: float = 3.0):
        self.settings, self.timeout = settings, timeout
        self.groups = sentinel_groups(settings)
        names = [topics.full_name(s, settings.kafka.topic_prefix) for s in topics.ALL]
        self.admin = AdminClient(settings.kafka.as_confluent())
        self.probes = {g: LagProbe(settings, g, names, only_committed=True, timeout=timeout)
                       for g in self.groups}  # fmt: skip

    def close(self) -> None:
        for probe in self.probes.values():
            probe.close()

    def describe(self) -> dict[str, dict]:
        out = {}
        futures = self.admin.describe_consumer_groups(list(self.groups), request_timeout=self.timeout)
        for group, future in futures.items():
            try:
                described = future.result(timeout=self.timeout)
                out[group] = {"state": described.state.name, "members": len(described.members)}
            except Exception as exc:  # noqa: BLE001 - an unknown group is a state, not an error
                out[group] = {"state": f"unknown ({type(exc).__name__})", "members": 0}
        return out

    def dead_letters(self) -> dict[str, int]:
        """Records held in each dead-letter topic (high minus low watermark)."""
        consumer = next(iter(self.probes.values())).consumer
        existing = consumer.list_topics(timeout=self.timeout).topics
        out = {}
        for spec in topics.SOURCES:
            name = topics.full_name(topics.dlq(spec), self.settings.kafka.topic_prefix)
            if name in existing:
                marks = [consumer.get_watermark_offsets(TopicPartition(name, p), timeout=self.timeout)
                         for p in existing[name].partitions]  # fmt: skip
                out[spec.name] = sum(max(0, high - low) for low, high in marks)
        return out

    def service_checks(self) -> list[dict]:
        """Each HTTP-checked service of infra/services.py, by its own health check."""
        from infra import health, services

        out = []
        for service in services.SERVICES:
            if service.health.kind == "http":
                ok, why = health.check(service, self.settings, state=None)
                out.append({"service": service.name, "status": "up" if ok else "down", "detail": why})
        return out

    def snapshot(self) -> dict:
        """Groups with per-partition lag, dead letters, service probes, when it was taken."""
        states = self.describe()
        out = {"taken_at": time.time(), "groups": [], "dead_letters": self.dead_letters(),
               "probes": self.service_checks()}  # fmt: skip
        for group, service in self.groups.items():
            rows = [{"topic": r.topic, "partition": r.partition, "committed": r.committed,
                     "end": r.end, "lag": r.records, "lag_s": r.seconds}
                    for r in self.probes[group].measure()]  # fmt: skip
            out["groups"].append({
                "group": group, "service": service, **states[group], "partitions": rows,
                "lag": sum(r["lag"] for r in rows),
                "lag_s": max((r["lag_s"] or 0.0 for r in rows), default=0.0),
                "committed": sum(max(0, r["committed"]) for r in rows),
            })  # fmt: skip
        return out
