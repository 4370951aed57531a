"""Samples the console takes in the background, so that pages never wait on them: the
gateway's request counters (its Prometheus /metrics) and Kafka's view of the consumers
(``kafka_view.snapshot``) every ``every_s``; rates come from successive samples. Samples live
in memory (the last hour); a restarted console shows rates again after two samples."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from datetime import UTC, datetime

import httpx
from prometheus_client.parser import text_string_to_metric_families

from connectors.console.kafka_view import KafkaView
from infra.settings import Settings

log = logging.getLogger(__name__)
KEEP = 360  # samples: an hour at 10 s


def gateway_counts(text: str) -> dict[str, float]:
    """Requests by HTTP status from the gateway's metrics text (connectors/metrics.py)."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "sentinel_gateway_requests_total":
                status = sample.labels.get("status", "?")
                out[status] = out.get(status, 0.0) + sample.value
    return out


def per_minute(samples: deque) -> list[dict]:
    """Requests per minute by status between successive samples (a restart of the gateway
    resets its counters: a negative difference counts from zero)."""
    rows = []
    for (t0, before), (t1, after) in zip(list(samples), list(samples)[1:], strict=False):
        if before is None or after is None or t1 <= t0:
            continue
        scale = 60.0 / (t1 - t0)
        rates = {s: _delta(after[s], before.get(s, 0.0)) for s in after}
        rows.append({"at": datetime.fromtimestamp(t1, UTC),
                     "per_min": {s: round(v * scale, 1) for s, v in sorted(rates.items())}})  # fmt: skip
    return rows


def _delta(after: float, before: float) -> float:
    return after if after < before else after - before


class Sampler:
    def __init__(self, settings: Settings, every_s: float = 10.0):
        self.settings = settings
        self.every_s = every_s
        self.gateway: deque[tuple[float, dict | None]] = deque(maxlen=KEEP)
        self.gateway_health: dict = {"reachable": False}
        self.kafka: dict | None = None
        self.kafka_error: str | None = None
        self.ready = asyncio.Event()
        self.started = False
        self._view: KafkaView | None = None
        self._in_flight: asyncio.Future | None = None

    def gateway_minutes(self) -> dict:
        return {**self.gateway_health, "per_minute": per_minute(self.gateway)}

    @property
    def gateway_url(self) -> str:
        hook = self.settings.webhook
        return f"http://{hook.host}:{hook.port}"

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=2.0) as http:
            while True:
                await asyncio.gather(self._sample_gateway(http), self._sample_kafka())
                self.ready.set()
                await asyncio.sleep(self.every_s)

    async def _sample_gateway(self, http: httpx.AsyncClient) -> None:
        try:
            metrics = await http.get(f"{self.gateway_url}/metrics")
            health = await http.get(f"{self.gateway_url}/healthz")
            self.gateway.append((time.time(), gateway_counts(metrics.text)))
            self.gateway_health = {"reachable": True, **health.json()}
        except (httpx.HTTPError, ValueError) as exc:
            self.gateway.append((time.time(), None))
            self.gateway_health = {"reachable": False, "error": type(exc).__name__}

    def _snapshot(self) -> dict:
        if self._view is None:
            self._view = KafkaView(self.settings)
        return self._view.snapshot()

    async def close(self, within_s: float = 10.0) -> None:
        """Wait up to ``within_s`` for a snapshot in flight (threads cannot be cancelled), then
        close Kafka. A snapshot still running keeps its clients: closing a librdkafka client
        another thread is using is not safe, and the process is ending anyway."""
        if self._in_flight is not None:
            await asyncio.wait([self._in_flight], timeout=within_s)
            if not self._in_flight.done():
                log.warning("a Kafka snapshot still running after %s s: its clients left open", within_s)
                return
            if not self._in_flight.cancelled():
                self._in_flight.exception()  # retrieved: _sample_kafka reported it
        if self._view is not None:
            await asyncio.to_thread(self._view.close)

    async def _sample_kafka(self) -> None:
        try:
            self._in_flight = asyncio.ensure_future(asyncio.to_thread(self._snapshot))
            snap = await asyncio.shield(self._in_flight)
        except Exception as exc:  # noqa: BLE001 - the System section shows it
            self.kafka_error = f"{type(exc).__name__}: {exc}"
            log.warning("kafka snapshot failed: %s", self.kafka_error)
            return
        self._rates(snap, self.kafka)
        self.kafka, self.kafka_error = snap, None

    @staticmethod
    def _rates(snap: dict, before: dict | None) -> None:
        """Records per second each group committed since the previous snapshot."""
        previous = {g["group"]: g for g in (before or {}).get("groups", [])}
        elapsed = snap["taken_at"] - before["taken_at"] if before else 0.0
        for group in snap["groups"]:
            old = previous.get(group["group"])
            group["records_per_s"] = (
                round(max(0, group["committed"] - old["committed"]) / elapsed, 1)
                if old is not None and elapsed > 0 else None
            )
