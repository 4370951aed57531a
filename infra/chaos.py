"""``sentinel chaos --out FILE.json``: a simulated stream through the gateway while processes
are SIGKILLed at random moments (gateway, workers, each sink, chain listener), the Kafka broker
restarts once and PostgreSQL and Redis are each unavailable for a while; once everything has
caught up, what was accepted is compared with what was decided (``infra/chaos_report.py``).

Everything runs on a stack of its own (``infra/chaos_fleet.py``): other ports, another data
dir, its own servers, all stopped and removed at the end. Targets: ``lost`` = 0,
``duplicated`` = 0, ``alerts_duplicated`` = 0, with at least ``kills`` kills.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from infra import admin, chaos_report, db, local
from infra.chaos_fleet import Fleet, chaos_stack
from infra.chaos_traffic import drive, records
from infra.settings import Settings, get_settings


@dataclass(frozen=True)
class ChaosConfig:
    duration_s: float = 240.0  # how long traffic flows (the faults happen meanwhile)
    rate: float = 25.0  # records per second through the gateway
    kills: int = 24
    outage_s: float = 30.0  # PostgreSQL and Redis, each
    attackers: int = 8  # brute-force bursts: each must give exactly one alert
    workers: int = 2
    catch_up_s: float = 600.0
    seed: int = 0

    @classmethod
    def short(cls, seed: int = 0) -> ChaosConfig:
        """The form ``make test`` runs: every kind of fault once, a kill per service."""
        return cls(duration_s=60.0, rate=15.0, kills=7, outage_s=10.0, attackers=3,
                   catch_up_s=300.0, seed=seed)  # fmt: skip


def run(config: ChaosConfig, keep: Path | None = None) -> dict[str, Any]:
    seed = config.seed or random.randrange(1, 2**31)
    rng = random.Random(seed)
    data_dir = keep or Path(tempfile.mkdtemp(prefix="sentinel-chaos-"))
    offset = _free_offset(rng)
    secret = secrets.token_hex(32)
    settings, env = chaos_stack(data_dir, offset, secret)
    _share_kafka_jars(data_dir)
    servers = ["kafka", "postgres", "redis", *(["evm"] if _anvil() else [])]
    fleet = Fleet(env, data_dir, rng)
    started = time.monotonic()
    try:
        local.start_all(settings, servers)
        admin.create_topics(settings)
        db.migrate(settings.postgres.dsn)
        if "evm" in servers:
            from connectors.chain_local import ensure_contract

            env["EVM_CONTRACTS"] = ensure_contract(settings)
        _start(fleet, config.workers, "evm" in servers)
        _wait_gateway(settings, fleet)
        report = _storm(config, settings, fleet, rng, secret.encode(), seed)
    finally:
        fleet.stop()
        local.stop_all(settings, servers)
        if keep is None:
            _remove(settings, data_dir)
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    report["config"] = {**asdict(config), "seed": seed}
    report["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    return report


def _start(fleet: Fleet, workers: int, chain: bool) -> None:
    fleet.add("gateway", ("gateway",))
    for n in range(1, workers + 1):
        fleet.add(f"worker-{n}", ("worker",))
    for sink in ("postgres", "redis", "siem"):
        fleet.add(f"sink-{sink}", ("sink", sink))
    if chain:
        fleet.add("chain-listener", ("chain-listen",))


def _storm(config: ChaosConfig, settings: Settings, fleet: Fleet, rng: random.Random,
           secret: bytes, seed: int) -> dict[str, Any]:
    items = records(int(config.rate * config.duration_s), seed, config.attackers)
    result: dict[str, Any] = {}
    url = f"http://127.0.0.1:{settings.webhook.port}"
    traffic = threading.Thread(target=lambda: result.update(
        sent=asyncio.run(drive(url, secret, items, config.rate))), daemon=True)  # fmt: skip
    traffic.start()
    outages = _faults(config, settings, fleet, rng, traffic)
    traffic.join()
    sent = result["sent"]
    accepted = sent.accepted.get("purchase", set())
    found = chaos_report.wait_decided(settings, accepted, config.catch_up_s, fleet.tend,
                                      time.sleep)  # fmt: skip
    alerts = _wait_alerts(settings, config.attackers, fleet)
    lost = sorted(accepted - found)
    sink_log = fleet.children["sink-postgres"].log
    report = {
        "accepted": len(accepted), "decided": len(found), "lost": len(lost),
        "lost_ids": lost[:20], "lost_where": chaos_report.lost_where(settings, lost, sink_log),
        **chaos_report.duplicated(settings),
        **alerts, "alerts_expected_at_least": config.attackers,
        "dead_letters": chaos_report.dead_letters(settings),
        "kills": sum(fleet.kills().values()), "kills_by_service": fleet.kills(),
        "outages": outages,
        "sent": {"records": len(items), "retries": sent.retries, "gave_up": sent.gave_up,
                 "statuses": {f"{k} {s}": n for (k, s), n in sorted(sent.statuses.items())}},
    }  # fmt: skip
    report["targets_met"] = (report["lost"] == 0 and report["duplicated"] == 0
                             and report["alerts_duplicated"] == 0
                             and report["kills"] >= config.kills)  # fmt: skip
    return report


def _faults(config: ChaosConfig, settings: Settings, fleet: Fleet, rng: random.Random,
            traffic: threading.Thread) -> list[dict[str, Any]]:
    """Kills at random moments over the run, every service at least once when there are
    enough kills; the broker restart and the two outages at fixed fractions of it."""
    span = config.duration_s
    names = list(fleet.children)
    rng.shuffle(names)
    targets = [names[i % len(names)] for i in range(config.kills)]
    plan = sorted((rng.uniform(0.05, 0.9) * span, "kill", t) for t in targets)
    plan += [(0.25 * span, "restart", "kafka"), (0.45 * span, "outage", "postgres"),
             (0.7 * span, "outage", "redis")]  # fmt: skip
    plan.sort()
    begun, outages = time.monotonic(), []
    for at, action, target in plan:
        while time.monotonic() - begun < at:
            fleet.tend()
            time.sleep(0.2)
        if action == "kill":
            while not fleet.kill(target):  # down already: wait for it to come back
                fleet.tend()
                time.sleep(0.2)
        else:
            outages.append(_outage(settings, target, 0 if action == "restart" else config.outage_s,
                                   fleet))  # fmt: skip
    while traffic.is_alive():
        fleet.tend()
        time.sleep(0.2)
    return outages


def _outage(settings: Settings, server: str, down_s: float, fleet: Fleet) -> dict[str, Any]:
    stopped = time.monotonic()
    local.stop_server(settings, server)
    while time.monotonic() - stopped < down_s:
        fleet.tend()
        time.sleep(0.2)
    local.start_server(settings, server)
    kind = "restart" if down_s == 0 else "unavailable"
    return {"server": server, "kind": kind, "down_s": round(time.monotonic() - stopped, 1)}


def _wait_alerts(settings: Settings, expected: int, fleet: Fleet) -> dict[str, int]:
    deadline = time.monotonic() + 120
    found = chaos_report.alerts(settings)
    while found["alerts"] < expected and time.monotonic() < deadline:
        fleet.tend()
        time.sleep(2)
        found = chaos_report.alerts(settings)
    return found


def _wait_gateway(settings: Settings, fleet: Fleet, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fleet.tend()
        try:
            health = httpx.get(f"http://127.0.0.1:{settings.webhook.port}/healthz", timeout=2)
            if health.json().get("kafka") and health.json().get("redis"):
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the chaos gateway did not answer within {timeout} s")


def _free_offset(rng: random.Random) -> int:
    """A port offset whose servers' and gateway's ports are all free, and all below the
    kernel's ephemeral range (32768): a client retrying a connection to a stopped server
    on an ephemeral port can connect to itself and hold the port the server restarts on."""
    ports = (19092, 19093, 15432, 16379, 18545, 8080)
    for _ in range(50):
        offset = rng.randrange(10, 136) * 100
        if all(port_free(p + offset) for p in ports):
            return offset
    raise RuntimeError("no free port range for the chaos stack")


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _share_kafka_jars(data_dir: Path) -> None:
    """Link the broker's jars of the usual data dir (else Maven resolves them again)."""
    libs = get_settings().stream.data_dir / "kafka" / "libs"
    target = data_dir / "kafka" / "libs"
    if libs.is_dir() and not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(libs)


def _anvil() -> bool:
    from infra import evm

    try:
        evm.anvil_binary()
    except evm.EvmNodeError:
        return False
    return True


def _remove(settings: Settings, data_dir: Path) -> None:
    pg_home = local.server_spec(settings, "postgres").home
    if pg_home != data_dir and not str(pg_home).startswith(str(data_dir)):
        shutil.rmtree(pg_home, ignore_errors=True)  # root runs it under /var/lib/sentinel
    shutil.rmtree(data_dir, ignore_errors=True)
