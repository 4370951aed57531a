"""A Redis server of a test's own (another port, a temporary directory), for faults that must
not touch the session's shared Redis: MISCONF, BUSY, a server that goes away."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from infra.observe import free_port
from infra.process import stop_group


@dataclass
class PrivateRedis:
    url: str
    port: int
    home: Path
    client: redis.Redis


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    home = Path(tempfile.mkdtemp(prefix="sentinel-redis-"))
    port = free_port()
    exe = shutil.which("redis-server") or "redis-server"
    argv = [exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(home),
            "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--enable-protected-configs", "yes"]  # fmt: skip
    log = open(home / "redis.out", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    client = redis.Redis(port=port, socket_timeout=5)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, (
                    (home / "redis.out").read_text()[-2000:])
                time.sleep(0.05)
        yield PrivateRedis(f"redis://127.0.0.1:{port}/0", port, home, client)
    finally:
        client.close()
        stop_group(proc, 10)
        log.close()
        shutil.rmtree(home, ignore_errors=True)
