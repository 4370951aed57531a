"""The whole system on the embedded stack: ``sentinel up``, ``down`` and ``status``.

``up`` starts the servers the services need (Kafka, PostgreSQL, Redis, the local EVM node;
those with an endpoint in the environment are used as they are), creates the topics, applies
the migrations, deploys the ticket contract on a local node, hands the services of
infra/services.py to supervisord and waits until each is healthy. Every step is idempotent:
a second ``up`` leaves what runs alone and starts what does not. ``down`` stops the services,
then the servers this checkout started.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from infra import db, health, local, services, supervisor
from infra.services import Service
from infra.settings import Settings

HEALTHY_TIMEOUT_S = 180.0
# Tansu holds every fetch for the whole wait (DESIGN.md "Known facts"): a hop costs about
# half of it, so on Tansu the services fetch with this wait instead of the default.
TANSU_FETCH_WAIT_MAX_MS = 10


def commands() -> set[str]:
    """The ``sentinel`` subcommands that exist (a service slot waits for its own)."""
    from infra.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return set(sub.choices)


def wanted(settings: Settings) -> list[Service]:
    return services.start_order(services.enabled(commands()))


def servers_to_start(settings: Settings, chosen: list[Service],
                     environ: Mapping[str, str] | None = None) -> set[str]:
    return local.needs_embedded(settings, environ, services.servers_needed(chosen))


def up(settings: Settings, timeout_s: float = HEALTHY_TIMEOUT_S) -> dict[str, tuple[bool, str]]:
    """Start everything; returns (healthy, why) per service (see ``wait`` for the deadline)."""
    from infra import admin

    chosen = wanted(settings)
    embedded = servers_to_start(settings, chosen)
    local.start_all(settings, embedded)
    admin.create_topics(settings)
    db.migrate(settings.postgres.dsn)
    supervisor.start(settings, chosen, service_env(settings, chosen, embedded))
    return health.wait_healthy(settings, chosen, lambda: _states(settings), timeout_s)


def service_env(settings: Settings, chosen: list[Service], embedded: set[str]
                ) -> dict[str, dict[str, str]]:
    """Per service, variables the embedded run adds: on a local EVM node we started, the
    chain listener follows the ticket contract deployed there (unless EVM_CONTRACTS is set);
    on a Tansu broker we started, every service fetches with Tansu's short wait (unless
    KAFKA_FETCH_WAIT_MAX_MS is set)."""
    env: dict[str, dict[str, str]] = {s.name: {} for s in chosen}
    if ("kafka" in embedded and local.server_spec(settings, "kafka").engine == "tansu"
            and not os.environ.get("KAFKA_FETCH_WAIT_MAX_MS")):
        for variables in env.values():
            variables["KAFKA_FETCH_WAIT_MAX_MS"] = str(TANSU_FETCH_WAIT_MAX_MS)
    listens = "chain-listener" in env
    if listens and "evm" in embedded and not os.environ.get("EVM_CONTRACTS"):
        from connectors.chain_local import ensure_contract

        env["chain-listener"]["EVM_CONTRACTS"] = ensure_contract(settings)
    return {name: variables for name, variables in env.items() if variables}


def down(settings: Settings) -> tuple[list[str], dict[str, dict]]:
    """Stop the services, then every server this checkout started."""
    stopped = supervisor.stop(settings)
    return stopped, local.stop_all(settings)


def status(settings: Settings) -> tuple[dict[str, dict], list[dict]]:
    """Servers (state, pid, endpoint) and services (state, pid, uptime, health, lag)."""
    servers = local.status(settings, local.KNOWN)
    procs = supervisor.processes(settings)
    rows = []
    for service in wanted(settings):
        proc = procs.get(service.name, {})
        ok, why = health.check(service, settings, proc.get("state", "STOPPED"))
        rows.append({"name": service.name, "state": proc.get("state", "STOPPED"),
                     "pid": proc.get("pid"), "uptime_s": proc.get("uptime_s", 0),
                     "healthy": ok, "health": why, "lag": health.lag(settings, service),
                     "log": proc.get("log")})
    return servers, rows


def _states(settings: Settings) -> dict[str, str]:
    return {name: p["state"] for name, p in supervisor.processes(settings).items()}
