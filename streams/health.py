"""The worker's operator endpoint: metrics, ``/healthz`` and ``/readyz`` on
METRICS_BIND:METRICS_WORKER_PORT (``infra.observe``).

- ``/healthz`` (liveness): the event loop runs; a Faust timer beats every second and the probe
  fails when the last beat is older than ``STALL_S`` (a batch that blocks the loop that long,
  or a hung worker).
- ``/readyz`` (caught up): the worker's consumer group lags at most METRICS_READY_MAX_LAG_S
  seconds on every partition of every topic its agents read (``infra.lag``, measured every
  METRICS_LAG_INTERVAL_S, exported as ``sentinel_consumer_lag_records`` / ``_seconds``).
"""

from __future__ import annotations

import time

from infra import observe
from infra.lag import LagMonitor, LagProbe
from infra.settings import Settings
from streams.app import app

BEAT_S = 1.0
STALL_S = 15.0
_last_beat: list[float] = []  # time.monotonic() of the last beat (empty: not started yet)


@app.timer(interval=BEAT_S)
async def beat() -> None:
    _last_beat[:] = [time.monotonic()]


def alive() -> tuple[bool, dict]:
    if not _last_beat:
        return False, {"reason": "event loop not started yet"}
    age = time.monotonic() - _last_beat[0]
    return age <= STALL_S, {"last_beat_s_ago": round(age, 1), "stall_s": STALL_S}


def source_topics() -> list[str]:
    """Broker-side names of every topic an agent reads."""
    return sorted({name for agent in app.agents.values() for name in agent.channel.topics})


def start(settings: Settings) -> tuple[observe.ObserveServer | None, LagMonitor | None]:
    """Serve the endpoint and measure the group's lag (nothing when the port is 0)."""
    conf = settings.metrics
    if not conf.worker_port:
        return None, None
    probe = LagProbe(settings, settings.stream.app_id, source_topics())
    monitor = LagMonitor(probe, conf.lag_interval_s, settings.kafka.topic_prefix)

    def ready() -> tuple[bool, dict]:
        live, details = alive()
        if not live:
            return False, details
        return monitor.readiness(conf.ready_max_lag_s)

    probes = {"/healthz": alive, "/readyz": ready}
    server = observe.serve(conf.bind, conf.worker_port, "METRICS_WORKER_PORT", probes)
    return server, monitor.start()
