"""Prometheus metrics of the webhook gateway, in a registry of its own (one per app), and of
the chain listener (the process's default registry, served on METRICS_CHAIN_PORT)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "sentinel_gateway_requests", "Webhook requests by endpoint and HTTP status",
            ["endpoint", "status"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "sentinel_gateway_request_seconds", "Webhook request latency, read to answer",
            ["endpoint"], buckets=BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.security_events = Counter(
            "sentinel_gateway_security_events", "Security events emitted by kind",
            ["kind"], registry=self.registry,
        )  # fmt: skip
        self.delivery_failures = Counter(
            "sentinel_gateway_delivery_failures", "Records the broker did not acknowledge (503)",
            ["endpoint"], registry=self.registry,
        )  # fmt: skip

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)


CHAIN = ["chain", "listener"]
CHAIN_SAFE_HEAD = Gauge("sentinel_chain_safe_head_block", "Head minus confirmations", CHAIN)
CHAIN_PUBLISHED = Gauge("sentinel_chain_published_block", "Last block published", CHAIN)
CHAIN_BEHIND = Gauge("sentinel_chain_blocks_behind", "Safe head minus last published block", CHAIN)
CHAIN_RECORDS = Counter("sentinel_chain_records_published", "Transfers published", CHAIN)
CHAIN_ROUND_ERRORS = Counter(
    "sentinel_chain_round_errors", "Rounds that failed and were read again", [*CHAIN, "error"]
)
CHAIN_REORGS = Counter("sentinel_chain_reorgs", "Reorgs deeper than the confirmations", CHAIN)
