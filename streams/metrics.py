"""Prometheus metrics of the worker, served on 127.0.0.1:SENTINEL_METRICS_PORT when set."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

DECISIONS = Counter("sentinel_decisions_total", "Decisions emitted", ["decision"])
DEAD_LETTERS = Counter("sentinel_dead_letters_total", "Records sent to a DLQ", ["topic"])
LATENCY = Histogram(
    "sentinel_decision_latency_ms", "Edge acceptance to decision, ms",
    buckets=(5, 10, 15, 25, 50, 100, 150, 250, 500, 1000, 2500, 5000),
)
BATCH = Histogram("sentinel_batch_size", "Purchases per scoring batch",
                  buckets=(1, 5, 10, 25, 50, 100, 250, 500))
PSI = Gauge("sentinel_feature_psi", "Population stability index vs training", ["feature"])
KL = Gauge("sentinel_feature_kl", "KL divergence vs training", ["feature"])


def serve(port: int) -> None:
    if port:
        start_http_server(port, addr="127.0.0.1")


def observe_decisions(decisions: list[dict]) -> None:
    BATCH.observe(len(decisions))
    for d in decisions:
        DECISIONS.labels(d["decision"]).inc()
        LATENCY.observe(d["latency_ms"])


def observe_drift(report: dict[str, dict[str, float]]) -> None:
    for feature, values in report.items():
        PSI.labels(feature).set(values["psi"])
        KL.labels(feature).set(values["kl"])
