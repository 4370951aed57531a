"""Consumer lag of a group, per topic and partition, in records and in seconds.

- **records**: the end offset (high watermark) minus the committed offset, never below 0
  (some brokers report a high watermark behind the log end: DESIGN.md). A partition the group
  never committed counts from the log start, since our consumers reset to the earliest offset.
- **seconds**: the age of the oldest unconsumed record, i.e. now minus the timestamp (the
  producer's create time) of the record at the committed offset; 0 when nothing waits. This
  is how long the oldest waiting record has waited, which is what "60 s behind" means to an
  operator (1 000 records are 0.3 s of work at full speed, or an hour on a quiet topic).

``LagProbe`` measures with a consumer of its own that never joins the group and never
commits. ``LagMonitor`` measures every few seconds in a thread, exports the gauges and answers
readiness (caught up: the oldest unconsumed record is at most ``max_lag_s`` old).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaException, TopicPartition
from prometheus_client import Counter, Gauge

from infra.settings import Settings

log = logging.getLogger(__name__)

LABELS = ["group", "topic", "partition"]
LAG_RECORDS = Gauge("sentinel_consumer_lag_records", "Records not yet consumed", LABELS)
LAG_SECONDS = Gauge("sentinel_consumer_lag_seconds", "Age of the oldest unconsumed record", LABELS)
CHECK_FAILURES = Counter("sentinel_consumer_lag_check_failures", "Failed lag checks", ["group"])


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int  # -1: the group never committed on this partition
    end: int
    records: int
    seconds: float | None  # None: records wait but the oldest one could not be read in time


class LagProbe:
    def __init__(
        self,
        settings: Settings,
        group: str,
        topics: Sequence[str],
        *,
        only_committed: bool = False,
        timeout: float = 5.0,
    ):
        """``topics``: broker-side names; ``only_committed``: skip the partitions the group
        never committed on (when ``topics`` lists more than the group consumes)."""
        self.group, self.topics, self.timeout = group, list(topics), timeout
        self.only_committed = only_committed
        conf = settings.kafka.consumer_conf(
            group,
            **{"enable.auto.offset.store": False, "fetch.max.bytes": 1 << 20,
               "max.partition.fetch.bytes": 1 << 16, "queued.min.messages": 1},
        )  # fmt: skip
        self.consumer = Consumer(conf)

    def close(self) -> None:
        self.consumer.close()

    def measure(self, now_ms: int | None = None) -> list[PartitionLag]:
        meta = self.consumer.list_topics(timeout=self.timeout).topics
        wanted = [name for name in self.topics if name in meta]
        tps = [TopicPartition(t, p) for t in wanted for p in sorted(meta[t].partitions)]
        committed = self.consumer.committed(tps, timeout=self.timeout) if tps else []
        rows, waiting = [], []
        for tp in committed:
            if tp.offset < 0 and self.only_committed:
                continue
            low, high = self.consumer.get_watermark_offsets(tp, timeout=self.timeout)
            start = max(tp.offset, low) if tp.offset >= 0 else low
            rows.append((tp, high, max(0, high - start)))
            if high > start:
                waiting.append(TopicPartition(tp.topic, tp.partition, start))
        stamps = self._oldest_timestamps(waiting)
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        return [
            PartitionLag(tp.topic, tp.partition, max(tp.offset, -1), high, records,
                         _age_s(now_ms, stamps.get((tp.topic, tp.partition))) if records else 0.0)
            for tp, high, records in rows
        ]  # fmt: skip

    def _oldest_timestamps(self, waiting: list[TopicPartition]) -> dict[tuple[str, int], int]:
        """The timestamp (ms) of the record at each partition's offset."""
        if not waiting:
            return {}
        stamps: dict[tuple[str, int], int] = {}
        self.consumer.assign(waiting)
        deadline = time.monotonic() + self.timeout
        try:
            while len(stamps) < len(waiting) and time.monotonic() < deadline:
                for msg in self.consumer.consume(len(waiting), 0.2):
                    topic, partition = msg.topic(), msg.partition()
                    kind, stamp = msg.timestamp()
                    if (msg.error() is None and topic is not None and partition is not None
                            and (topic, partition) not in stamps
                            and kind != TIMESTAMP_NOT_AVAILABLE):
                        stamps[(topic, partition)] = stamp
        finally:
            self.consumer.unassign()
        return stamps


def _age_s(now_ms: int, stamp_ms: int | None) -> float | None:
    return None if stamp_ms is None else max(0.0, (now_ms - stamp_ms) / 1000)


def export(group: str, rows: Sequence[PartitionLag], prefix: str = "") -> None:
    """Set the gauges; topics are labelled by their registry name (without the prefix)."""
    for row in rows:
        labels = (group, row.topic.removeprefix(prefix), str(row.partition))
        LAG_RECORDS.labels(*labels).set(row.records)
        if row.seconds is not None:
            LAG_SECONDS.labels(*labels).set(row.seconds)


class LagMonitor:
    """``probe.measure()`` every ``interval_s`` in a daemon thread until ``stop()``."""

    def __init__(self, probe: LagProbe, interval_s: float, prefix: str = ""):
        self.probe, self.interval_s, self.prefix = probe, interval_s, prefix
        self.rows: list[PartitionLag] | None = None
        self.measured_at: float | None = None  # time.monotonic() of the last measurement
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lag-monitor", daemon=True)

    def start(self) -> LagMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.probe.timeout * 3)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.check()
                self._stop.wait(self.interval_s)
        finally:
            self.probe.close()

    def check(self) -> None:
        try:
            rows = self.probe.measure()
        except KafkaException as exc:
            self.error = str(exc)
            CHECK_FAILURES.labels(self.probe.group).inc()
            log.warning("lag check of %s failed: %s", self.probe.group, exc)
            return
        export(self.probe.group, rows, self.prefix)
        self.rows, self.measured_at, self.error = rows, time.monotonic(), None

    def readiness(self, max_lag_s: float) -> tuple[bool, dict]:
        """Caught up: a recent measurement in which every waiting record is at most
        ``max_lag_s`` old."""
        if self.rows is None or self.measured_at is None:
            return False, {"reason": self.error or "no lag measurement yet"}
        age = time.monotonic() - self.measured_at
        known = [r.seconds for r in self.rows if r.seconds is not None]
        unknown = [f"{r.topic}[{r.partition}]" for r in self.rows if r.seconds is None]
        details: dict[str, Any] = {
            "group": self.probe.group,
            "lag_records": sum(r.records for r in self.rows),
            "lag_seconds": max(known, default=0.0),
            "measured_s_ago": round(age, 1),
            "max_lag_s": max_lag_s,
        }
        stale = age > 3 * self.interval_s + 2 * self.probe.timeout
        if stale or unknown:
            details["reason"] = "stale measurement" if stale else f"unreadable: {unknown[:5]}"
            return False, details
        return details["lag_seconds"] <= max_lag_s, details
