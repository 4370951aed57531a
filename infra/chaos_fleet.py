"""The chaos run's own stack: servers on shifted loopback ports under a data dir of its own
(never the stack other work uses), and the Sentinel services as child processes that can be
SIGKILLed and brought back.

``chaos_stack(data_dir, offset)`` gives the settings and the environment of every child;
``Fleet`` runs the services (``infra/services.py``'s commands) and restarts a killed one after
a short random pause, as a supervisor would.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from infra.process import stop_group
from infra.settings import (
    EvmSettings,
    KafkaSettings,
    MetricsSettings,
    PostgresSettings,
    RedisSettings,
    Settings,
    StreamSettings,
)

ENDPOINTS = ("KAFKA_BOOTSTRAP_SERVERS", "POSTGRES_URL", "REDIS_URL", "EVM_RPC_URL")


def chaos_stack(data_dir: Path, offset: int, secret: str) -> tuple[Settings, dict[str, str]]:
    """Settings of a stack on ports moved by ``offset`` under ``data_dir``, and the environment
    of its services (metrics off: several processes of a kind share the host)."""
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{19092 + offset}", topic_prefix=""),
        postgres=PostgresSettings(url=f"postgresql://sentinel@127.0.0.1:{15432 + offset}/sentinel"),
        redis=RedisSettings(url=f"redis://127.0.0.1:{16379 + offset}/0"),
        evm=EvmSettings(rpc_url=f"http://127.0.0.1:{18545 + offset}"),
        stream=StreamSettings(data_dir=data_dir, app_id="sentinel-chaos"),
    )
    env = {k: v for k, v in os.environ.items() if k not in ENDPOINTS and k != "KAFKA_TOPIC_PREFIX"}
    env.update({
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "POSTGRES_URL": settings.postgres.dsn, "REDIS_URL": settings.redis.dsn,
        "EVM_RPC_URL": settings.evm.rpc_url, "SENTINEL_DATA_DIR": str(data_dir),
        "SENTINEL_APP_ID": settings.stream.app_id, "SENTINEL_PORT_OFFSET": str(offset),
        "WEBHOOK_PORT": str(8080 + offset), "WEBHOOK_SECRETS": secret,
        # the run measures loss under faults, not the limits: raise them out of the way
        "WEBHOOK_RATE_PER_IP_PER_MIN": "100000", "WEBHOOK_RATE_PER_WALLET_PER_MIN": "100000",
        "WEBHOOK_RATE_GLOBAL_PER_MIN": "10000000",
        **{f"METRICS_{name.upper()}": "0" for name in MetricsSettings.model_fields
           if name.endswith("_port")},
    })  # fmt: skip
    hook = settings.webhook.model_copy(update={"port": 8080 + offset})
    return settings.model_copy(update={"webhook": hook}), env


@dataclass
class Child:
    name: str
    argv: tuple[str, ...]
    log: Path
    proc: subprocess.Popen | None = None
    kills: int = 0
    down_until: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Fleet:
    """Sentinel services as child processes; ``kill`` SIGKILLs one, ``tend`` restarts the
    killed ones once their pause is over (call it often)."""

    def __init__(self, env: dict[str, str], log_dir: Path, rng: random.Random):
        self.env, self.log_dir, self.rng = env, log_dir, rng
        self.children: dict[str, Child] = {}

    def add(self, name: str, argv: tuple[str, ...]) -> None:
        child = Child(name, argv, self.log_dir / f"{name}.log")
        self.children[name] = child
        self._spawn(child)

    def _spawn(self, child: Child) -> None:
        log = open(child.log, "ab")  # noqa: SIM115 - the child owns it; closed after the spawn
        try:
            child.proc = subprocess.Popen([sys.executable, "-m", "infra.cli", *child.argv],
                                          env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True)  # fmt: skip
        finally:
            log.close()

    def alive(self, name: str) -> bool:
        proc = self.children[name].proc
        return proc is not None and proc.poll() is None

    def kill(self, name: str, pause_s: tuple[float, float] = (0.5, 3.0)) -> bool:
        """SIGKILL ``name`` (its whole process group); it comes back after a random pause."""
        child = self.children[name]
        with child.lock:
            if child.proc is None or child.proc.poll() is not None:
                return False
            os.killpg(child.proc.pid, signal.SIGKILL)
            child.proc.wait(10)
            child.kills += 1
            child.down_until = time.monotonic() + self.rng.uniform(*pause_s)
        return True

    def tend(self) -> None:
        """Restart every child that is down and whose pause is over (crashes included)."""
        for child in self.children.values():
            with child.lock:
                dead = child.proc is None or child.proc.poll() is not None
                if dead and time.monotonic() >= child.down_until:
                    self._spawn(child)

    def kills(self) -> dict[str, int]:
        return {name: c.kills for name, c in self.children.items()}

    def stop(self) -> None:
        for child in self.children.values():
            if child.proc is not None:
                stop_group(child.proc, 15)
