"""Prometheus metrics of the sink loops (served on 127.0.0.1 when SINK_METRICS_PORT is set)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECORDS = Counter("sentinel_sink_records_total", "Records written by a sink", ["sink"])
DEAD_LETTERS = Counter(
    "sentinel_sink_dead_letters_total", "Records a sink sent to a dead-letter topic", ["sink"]
)
RETRIES = Counter("sentinel_sink_retries_total", "Batch write retries of a sink", ["sink"])
BATCH_SECONDS = Histogram(
    "sentinel_sink_batch_seconds",
    "Time to decode, write and commit one batch",
    ["sink"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
