"""Prometheus metrics of the webhook gateway, in a registry of its own (one per app)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

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
