"""A sink process's operator endpoint: metrics, ``/healthz`` and ``/readyz`` on METRICS_BIND
and METRICS_SINK_<NAME>_PORT (``infra.observe``), and each loop's consumer lag (``infra.lag``).

- ``/healthz``: no loop has stopped on a fatal error; each sink's ``failing`` state (backing
  off because its backend refuses writes) is in the answer and in ``sentinel_sink_failing``.
- ``/readyz``: no sink is failing and every loop's group lags at most METRICS_READY_MAX_LAG_S.
"""

from __future__ import annotations

from collections.abc import Sequence

from infra import observe
from infra.lag import LagMonitor, LagProbe
from infra.settings import Settings
from sinks.runner import SinkLoop


def start(settings: Settings, which: str, loops: Sequence[SinkLoop]):
    """Serve the endpoint of ``sentinel sink <which>``; returns (server, lag monitors)."""
    conf = settings.metrics
    port, variable = conf.sink_port(which)
    if not port:
        return None, []
    monitors = [
        LagMonitor(LagProbe(settings, loop.group_id, loop.topic_names), conf.lag_interval_s,
                   settings.kafka.topic_prefix)
        for loop in loops
    ]  # fmt: skip

    def alive() -> tuple[bool, dict]:
        sinks = {loop.sink.name: {"failing": loop.failing, "error": repr(loop.error)
                                  if loop.error else None} for loop in loops}  # fmt: skip
        return all(loop.error is None for loop in loops), {"sinks": sinks}

    def ready() -> tuple[bool, dict]:
        ok, details = alive()
        for loop, monitor in zip(loops, monitors, strict=True):
            caught_up, lag = monitor.readiness(conf.ready_max_lag_s)
            details["sinks"][loop.sink.name]["lag"] = lag
            ok = ok and caught_up and not loop.failing
        return ok, details

    server = observe.serve(conf.bind, port, variable, {"/healthz": alive, "/readyz": ready})
    return server, [monitor.start() for monitor in monitors]
