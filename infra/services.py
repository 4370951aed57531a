"""The long-running services of a Sentinel deployment, defined once.

``sentinel up`` runs them as supervised processes on the embedded stack (infra/supervisor.py)
and ``docker-compose.yml`` runs the same commands in containers; tests/unit/test_services.py
proves the two list the same services with the same commands and dependencies.

A service is a ``sentinel`` subcommand (``argv``), a health check, the servers and services
it needs first, and the consumer group whose lag ``sentinel status`` shows. A service whose
subcommand is missing from the installed build is a slot: off until the subcommand exists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from infra.settings import Settings

# Servers a service may depend on: the embedded stack (infra/local.py) or compose services.
SERVERS = ("kafka", "postgres", "redis", "evm")
MAINTAIN_EVERY = "1h"  # how often the maintenance service creates and drops partitions


@dataclass(frozen=True)
class Health:
    """How to tell a service works.

    ``http``: GET ``path`` on 127.0.0.1 at the port ``port(settings)`` answers 200;
    ``group``: its consumer group has members (it joined and owns partitions);
    ``running``: the process is up (no endpoint of its own).
    """

    kind: Literal["http", "group", "running"]
    path: str = ""
    port: Callable[[Settings], int] | None = None


@dataclass(frozen=True)
class Service:
    name: str
    argv: tuple[str, ...]  # arguments of the ``sentinel`` command
    health: Health
    depends_on: tuple[str, ...]  # names in SERVERS or other services, started first
    group: Callable[[Settings], str] | None = None  # consumer group (lag in ``status``)
    needs_command: str | None = None  # a slot: on only when this subcommand exists
    replicas: int = 1  # compose: how many containers (scale out: more partitions + replicas)


def _sink_group(name: str) -> Callable[[Settings], str]:
    """The sink loop's consumer group (sinks/runner.py: ``<prefix>sentinel-sink-<name>``)."""
    return lambda s: f"{s.kafka.topic_prefix}sentinel-sink-{name}"


def _sink(name: str, *servers: str) -> Service:
    group = _sink_group(name)
    return Service(f"sink-{name}", ("sink", name), Health("group"), ("kafka", *servers),
                   group=group)


SERVICES: tuple[Service, ...] = (
    Service("gateway", ("gateway",), Health("http", "/healthz", lambda s: s.webhook.port),
            ("kafka", "redis")),
    Service("worker", ("worker",), Health("group"), ("kafka", "redis"),
            group=lambda s: s.stream.app_id, replicas=2),
    _sink("postgres", "postgres"),
    _sink("redis", "redis"),
    _sink("siem", "redis", "postgres"),
    Service("chain-listener", ("chain-listen",),
            Health("http", "/healthz", lambda s: s.metrics.chain_port), ("kafka", "evm")),
    Service("maintenance", ("db", "maintain", "--every", MAINTAIN_EVERY),
            Health("http", "/healthz", lambda s: s.metrics.maintenance_port), ("postgres",)),
    Service("console", ("console",), Health("http", "/healthz", lambda s: s.console.port),
            ("postgres", "redis", "gateway"), needs_command="console"),
)


def by_name() -> dict[str, Service]:
    return {s.name: s for s in SERVICES}


def enabled(commands: set[str]) -> list[Service]:
    """The services to run, given the ``sentinel`` subcommands that exist (slots drop out)."""
    return [s for s in SERVICES if s.needs_command is None or s.needs_command in commands]


def start_order(services: list[Service]) -> list[Service]:
    """Dependencies first (a stable topological order); unknown names are servers."""
    names = {s.name: s for s in services}
    ordered: list[Service] = []

    def visit(service: Service, path: tuple[str, ...]) -> None:
        if service in ordered:
            return
        if service.name in path:
            raise ValueError(f"dependency cycle: {' -> '.join((*path, service.name))}")
        for dep in service.depends_on:
            if dep in names:
                visit(names[dep], (*path, service.name))
        ordered.append(service)

    for service in services:
        visit(service, ())
    return ordered


def servers_needed(services: list[Service]) -> set[str]:
    return {d for s in services for d in s.depends_on if d in SERVERS}
