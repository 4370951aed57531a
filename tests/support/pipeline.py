"""The running pipeline for end-to-end tests: the gateway, a worker, the sink loops and the
console as subprocesses of this test (own ports, own topics, own database), each stopped when
the block ends, with their logs kept for a failure message."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from infra.admin import admin_client, stable_members
from infra.process import stop_group
from infra.settings import Settings

SERVICES = {
    "gateway": ("-m", "infra.cli", "gateway"),
    "worker": ("-m", "streams"),
    "sinks": ("-m", "infra.cli", "sink", "all"),
    "console": ("-m", "infra.cli", "console"),
}


class Pipeline:
    def __init__(self, env: dict[str, str], logs: Path):
        self.env, self.logs = env, logs
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str) -> None:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen([sys.executable, *SERVICES[name]], env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)  # fmt: skip

    def tail(self, name: str, size: int = 3000) -> str:
        return (self.logs / f"{name}.log").read_bytes()[-size:].decode(errors="replace")

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")

    def wait_http(self, name: str, url: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if httpx.get(url, timeout=2).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"{name} did not answer {url} in {timeout:.0f} s:\n{self.tail(name)}")

    def wait_group(self, settings: Settings, group: str, timeout: float = 120.0) -> None:
        """Until the consumer group is stable with members (the worker owns its partitions)."""
        client = admin_client(settings)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if stable_members(client, group):
                return
            time.sleep(0.5)
        raise AssertionError(f"group {group} not stable in {timeout:.0f} s:\n{self.tail('worker')}")

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            stop_group(proc, 15.0)


@contextmanager
def running(env: dict[str, str], logs: Path, names: tuple[str, ...] = tuple(SERVICES)) -> Iterator[Pipeline]:
    logs.mkdir(parents=True, exist_ok=True)
    pipeline = Pipeline({**os.environ, **env}, logs)
    try:
        for name in names:
            pipeline.start(name)
        yield pipeline
    finally:
        pipeline.stop()
