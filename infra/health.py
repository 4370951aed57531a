"""Health and consumer lag of the services (infra/services.py), for ``sentinel status``,
``sentinel up`` (waits until healthy) and compose health checks (``sentinel health NAME``)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterable

from confluent_kafka import KafkaException

from infra.services import Service
from infra.settings import Settings


def check(service: Service, settings: Settings, state: str | None = "RUNNING") -> tuple[bool, str]:
    """(healthy, why). ``state``: the supervisor's state of its process, None when the
    process is not ours to see (a compose container checking itself)."""
    if state is not None and state != "RUNNING":
        return False, state.lower()
    health = service.health
    if health.kind == "http" and health.port is not None:
        return _http_ok(f"http://127.0.0.1:{health.port(settings)}{health.path}")
    if health.kind == "group" and service.group is not None:
        return _group_ok(settings, service.group(settings))
    return True, "running"


def _http_ok(url: str) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status == 200, f"{url} {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url} {exc.code}"
    except OSError as exc:
        return False, f"{url} {getattr(exc, 'reason', exc)}"


def _group_ok(settings: Settings, group: str) -> tuple[bool, str]:
    from confluent_kafka.admin import AdminClient

    # Kept referenced until the answer is in; warnings only (no "purging" notes at close).
    client = AdminClient({**settings.kafka.as_confluent(), "log_level": 4})
    try:
        described = client.describe_consumer_groups([group])[group].result(timeout=10)
    except (KafkaException, TimeoutError) as exc:
        return False, f"group {group}: {exc.args[0] if exc.args else 'no answer yet'}"
    members = len(described.members)
    state = described.state.name
    return state == "STABLE" and members > 0, f"group {group} {state.lower()}, {members} member(s)"


def lag(settings: Settings, service: Service) -> int | None:
    """Records its consumer group has not processed yet (None: no group, or not known)."""
    if service.group is None:
        return None
    from streams.ops import group_lag

    try:
        return sum(row["lag"] for row in group_lag(settings, service.group(settings), 5.0))
    except KafkaException:
        return None


def wait_healthy(settings: Settings, services: Iterable[Service], states, timeout_s: float
                 ) -> dict[str, tuple[bool, str]]:
    """Until every service is healthy or ``timeout_s`` passed; ``states()`` gives the
    supervisor's state per service name. Returns the last result per service."""
    pending = list(services)
    results: dict[str, tuple[bool, str]] = {}
    deadline = time.monotonic() + timeout_s
    while pending:
        current = states()
        for service in list(pending):
            state = current.get(service.name, "STARTING")
            results[service.name] = check(service, settings, state)
            if results[service.name][0]:
                pending.remove(service)
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    return results
