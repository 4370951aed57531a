"""Every long-running process's operator endpoint: Prometheus ``/metrics`` (prometheus_client's
own handler) plus JSON probes such as ``/healthz`` and ``/readyz``, on ``METRICS_BIND`` and the
process's port (``infra.settings.MetricsSettings``).

A probe is a function returning ``(ok, details)``: 200 with the details when ok, else 503. A
probe that raises answers 503 with the error. A port that cannot be bound is an error that
names the variable to change (a process serving no metrics would look healthy to nobody).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import MetricsHandler

log = logging.getLogger(__name__)

Probe = Callable[[], tuple[bool, dict[str, Any]]]


class MetricsBindError(RuntimeError):
    pass


def free_port() -> int:
    """A loopback port free now, for a throwaway child's endpoint (tests, benchmarks)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ports_off() -> dict[str, str]:
    """Environment that turns every process's endpoint off: for throwaway child processes
    (tests, benchmarks, the demo) that would otherwise take the services' fixed ports."""
    from infra.settings import MetricsSettings

    prefix = MetricsSettings.model_config["env_prefix"]
    fields = (name for name in MetricsSettings.model_fields if name.endswith("_port"))
    return {f"{prefix}{name}".upper(): "0" for name in fields}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    probes: Mapping[str, Probe] = {}


class _Handler(MetricsHandler):
    server: _Server

    def do_GET(self) -> None:
        probe = self.server.probes.get(urlsplit(self.path).path)
        if probe is None:
            super().do_GET()  # /metrics (any other path too, as prometheus_client does)
            return
        try:
            ok, details = probe()
        except Exception as exc:  # a probe that cannot answer is a failed probe
            ok, details = False, {"error": f"{type(exc).__name__}: {exc}"}
        body = json.dumps({"status": "ok" if ok else "failing", **details}, default=str).encode()
        self.send_response(200 if ok else 503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class ObserveServer:
    """A running endpoint; ``close()`` stops it."""

    def __init__(self, server: _Server):
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve(
    bind: str,
    port: int,
    variable: str,
    probes: Mapping[str, Probe] | None = None,
    registry: CollectorRegistry = REGISTRY,
) -> ObserveServer | None:
    """Serve on ``bind:port`` in a background thread; ``None`` when ``port`` is 0 (off).
    ``variable`` names the setting of the port, for the error if it cannot be bound."""
    if not port:
        log.info("metrics off (%s=0)", variable)
        return None
    handler = _Handler.factory(registry)  # quiet: MetricsHandler logs no request
    try:
        server = _Server((bind, port), handler)
    except OSError as exc:
        raise MetricsBindError(
            f"cannot serve metrics on {bind}:{port} ({exc.strerror or exc}); "
            f"set {variable} to a free port, or to 0 to turn the endpoint off"
        ) from exc
    server.probes = dict(probes or {})
    log.info("metrics on http://%s:%d/metrics, probes %s", bind, port, sorted(server.probes))
    return ObserveServer(server)
