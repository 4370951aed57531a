"""Prometheus metrics of the sink loops, served with their probes on METRICS_BIND and
METRICS_SINK_<NAME>_PORT (``sinks/cli.py``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

RECORDS = Counter("sentinel_sink_records_total", "Records written by a sink", ["sink"])
DEAD_LETTERS = Counter(
    "sentinel_sink_dead_letters_total", "Records a sink sent to a dead-letter topic",
    ["sink", "topic"],
)  # fmt: skip
RETRIES = Counter("sentinel_sink_retries_total", "Batch write retries of a sink", ["sink"])
ERRORS = Counter(
    "sentinel_sink_errors_total",
    "Sink errors: retryable (backend unavailable, retried), refused (a record dead-lettered), "
    "fatal (the loop stopped)",
    ["sink", "kind"],
)
STALLS = Counter(
    "sentinel_sink_stalled_partitions_total",
    "Owned partitions found not moving with records waiting, outside a backoff, and restarted",
    ["sink"],
)  # fmt: skip
FAILING = Gauge(
    "sentinel_sink_failing", "1 while a sink backs off after a failed write or setup, else 0",
    ["sink"],
)  # fmt: skip
WRITE_SECONDS = Histogram(
    "sentinel_sink_write_seconds", "Time of one write of a batch to the backend (each attempt)",
    ["sink"], buckets=BUCKETS,
)  # fmt: skip
BATCH_SECONDS = Histogram(
    "sentinel_sink_batch_seconds",
    "Time to decode, write and commit one batch",
    ["sink"],
    buckets=BUCKETS,
)
