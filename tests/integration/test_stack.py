"""``sentinel up`` runs every service of the registry supervised; a crashed one comes back; a
second ``up`` changes nothing; ``sentinel demo`` drives traffic through the signed gateway to
decisions in PostgreSQL; ``sentinel down`` stops everything ``up`` started."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from infra.observe import ports_off
from infra.settings import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]
# Default loopback ports of what `up` starts here (gateway, EVM node, metrics endpoints).
OWN_PORTS = (8080, 8090, 18545, 9101, 9102, 9103, 9104, 9105, 9106)


def free_offset() -> int:
    """A SENTINEL_PORT_OFFSET whose moved ports are all free now, and below the ephemeral range
    (32768 and up), where any client socket may take a port between our check and our bind."""
    for offset in range(4_000 + os.getpid() % 97 * 10, 14_000, 137):
        if not any(_taken(port + offset) for port in OWN_PORTS):
            return offset
    raise RuntimeError("no free port offset")


def _taken(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def sentinel(env: dict, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "infra.cli", *argv], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)


def services(env: dict) -> dict[str, dict]:
    done = sentinel(env, "status", "--json", timeout=120)
    return {row["name"]: row for row in json.loads(done.stdout)["services"]}


def all_healthy(env: dict, timeout: float = 180) -> dict[str, dict]:
    """Every service RUNNING and healthy at once (a busy machine may slow one answer)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = services(env)
        unhealthy = {n: (r["state"], r["health"]) for n, r in rows.items()
                     if r["state"] != "RUNNING" or not r["healthy"]}
        if not unhealthy:
            return rows
        assert time.monotonic() < deadline, unhealthy
        time.sleep(2)


def wait_restarted(env: dict, name: str, old_pid: int, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = services(env)[name]
        if row["pid"] not in (None, old_pid) and row["healthy"]:
            return row
        time.sleep(2)
    raise AssertionError(f"{name} not restarted healthy within {timeout} s: {row}")


@pytest.fixture
def stack_env(env, pg_dsn, tmp_path):
    variables = {k: v for k, v in env.items() if k not in ports_off()}  # the offset's ports
    variables.update({"POSTGRES_URL": pg_dsn, "SENTINEL_DATA_DIR": str(tmp_path / "data"),
                      "SENTINEL_PORT_OFFSET": str(free_offset()), "PYTHONPATH": str(REPO_ROOT)})
    variables.pop("EVM_RPC_URL", None)
    try:
        yield variables
    finally:
        down = sentinel(variables, "down", timeout=240)
        assert down.returncode == 0, down.stdout + down.stderr


@pytest.mark.timeout(900)
def test_up_supervises_every_service_and_down_stops_them(stack_env):
    up = sentinel(stack_env, "up", "--timeout", "240")
    assert up.returncode == 0, up.stdout + up.stderr
    first = all_healthy(stack_env)
    assert {"gateway", "worker", "sink-postgres", "sink-redis", "sink-siem", "chain-listener",
            "maintenance"} <= set(first)
    logs = {row["log"] for row in first.values()}
    assert logs == {os.path.join(stack_env["SENTINEL_DATA_DIR"], "logs", f"{n}.log")
                    for n in first}

    os.kill(first["worker"]["pid"], signal.SIGKILL)  # a crash: supervisord starts it again
    wait_restarted(stack_env, "worker", first["worker"]["pid"])

    again = sentinel(stack_env, "up", "--timeout", "240")
    assert again.returncode == 0, again.stdout + again.stderr
    pids = {n: r["pid"] for n, r in services(stack_env).items() if n != "worker"}
    assert pids == {n: r["pid"] for n, r in first.items() if n != "worker"}  # left alone

    demo = sentinel(stack_env, "demo", "--purchases", "40", "--timeout", "180")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "through the signed gateway" in demo.stdout
    stored, accepted = re.search(r"Decisions in PostgreSQL: (\d+) of (\d+)", demo.stdout).groups()
    assert int(accepted) > 0 and stored == accepted, demo.stdout
    assert "console" in first
    signs_in_with_printed_credentials(demo.stdout)
    again = sentinel(stack_env, "demo", "--purchases", "5", "--timeout", "180")
    assert again.returncode == 0 and "user admin exists" in again.stdout, again.stdout

    down = sentinel(stack_env, "down", timeout=240)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not any(os.path.exists(f"/proc/{row['pid']}") for row in first.values())
    status = json.loads(sentinel(stack_env, "status", "--json").stdout)
    assert all(row["state"] == "STOPPED" for row in status["services"])
    assert status["servers"]["evm"]["state"] == "stopped"


def signs_in_with_printed_credentials(demo_output: str) -> None:
    """The first run prints the console's URL and a generated admin password; they sign in."""
    found = re.search(r"console (http://\S+)  user (\S+)  password (\S+)  \(shown once\)",
                      demo_output)  # fmt: skip
    assert found, demo_output
    url, user, password = found.groups()
    with httpx.Client(base_url=url, timeout=10) as client:
        form = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        signed_in = client.post("/login", data={"username": user, "password": password,
                                                "csrf_token": token})  # fmt: skip
        assert signed_in.status_code == 303, signed_in.text
        assert client.get("/").status_code == 200
