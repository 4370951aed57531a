"""Scratch topics on the shared broker (``infra/scratch.py``): a run stopped with SIGTERM
deletes its own (a benchmark, a whole pytest session), and one killed outright leaves them to
the next sweep, which never touches a live run's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from infra import scratch
from infra.settings import REPO_ROOT, Settings

pytestmark = pytest.mark.integration

RUN = """
import signal, sys
from confluent_kafka.admin import NewTopic
from infra import admin, scratch
from infra.process import interrupt_on_term
from infra.settings import get_settings

settings = get_settings()
interrupt_on_term()

def create(token):
    names = [f"{token}.probe", f"sentinel-{token}-probe-changelog"]
    client = admin.admin_client(settings)
    for future in client.create_topics([NewTopic(n, 1, 1) for n in names]).values():
        future.result(30)
    admin.until_listed(client, set(names), True, 30)  # the broker's metadata lags the answer
    print(token, flush=True)
    signal.pause()  # until the test signals it

if sys.argv[1] == "claim":
    create(scratch.claim(settings, "tprobe").token)
else:
    with scratch.scratch_run(settings, "tprobe") as token:
        create(token)
"""

SESSION = """
import signal

def test_holds_its_topics(settings):
    print("prefix", settings.kafka.topic_prefix, flush=True)
    signal.pause()  # until the test signals it
"""


LEAKING = """
from confluent_kafka.admin import NewTopic
from infra import admin

def test_leaves_a_topic_behind(stack, session_token):
    name = f"{session_token}-left-behind"
    print("leaked", name, flush=True)
    client = admin.admin_client(stack)
    client.create_topics([NewTopic(name, 1, 1)])[name].result(30)
"""


def _env(stack: Settings) -> dict[str, str]:
    return {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": stack.kafka.bootstrap_servers,
            "POSTGRES_URL": stack.postgres.dsn, "REDIS_URL": stack.redis.dsn,
            "PYTHONPATH": str(REPO_ROOT)}


def _pytest(stack: Settings, test_file: Path) -> subprocess.Popen:
    """A pytest session of its own with this suite's fixtures (tests/conftest.py)."""
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "-s", "-q", "--rootdir", str(test_file.parent), str(test_file)],
        env=_env(stack), cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)  # fmt: skip


@contextmanager
def _run(stack: Settings, mode: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """A run that creates two topics under a token of its own, then waits to be stopped;
    killed, and its topics deleted, whatever the test found."""
    proc = subprocess.Popen([sys.executable, "-c", RUN, mode], env=_env(stack), cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, text=True)
    token = proc.stdout.readline().strip()
    try:
        yield proc, token
    finally:
        proc.kill()
        proc.wait(10)
        proc.stdout.close()
        if token:
            scratch.delete_owned(stack, token)


def _expected(token: str) -> list[str]:
    return sorted([f"{token}.probe", f"sentinel-{token}-probe-changelog"])


def test_a_killed_runs_topics_are_swept_and_a_live_runs_are_not(stack: Settings) -> None:
    with _run(stack, "claim") as (proc, token):
        assert token.startswith("tprobe"), proc.poll()
        assert token not in scratch.sweep(stack)  # alive: its lock is held
        assert scratch.leftovers(stack, token) == _expected(token)

        proc.kill()
        proc.wait(10)
        assert sorted(scratch.sweep(stack)[token]) == _expected(token)
        assert scratch.leftovers(stack, token) == []
        assert not (scratch.lock_dir(stack) / f"{token}.lock").exists()


def test_a_run_stopped_with_sigterm_deletes_its_topics(stack: Settings) -> None:
    with _run(stack, "scratch_run") as (proc, token):
        assert scratch.leftovers(stack, token) == _expected(token)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        assert scratch.leftovers(stack, token) == []
        assert not (scratch.lock_dir(stack) / f"{token}.lock").exists()


def test_a_test_session_stopped_with_sigterm_deletes_its_topics(stack: Settings,
                                                                 tmp_path: Path) -> None:
    """What a killed ``pytest`` used to leave: a test's 18 topics and its Faust app's."""
    (tmp_path / "test_holds.py").write_text(SESSION)
    proc = _pytest(stack, tmp_path / "test_holds.py")
    prefix = ""
    try:
        for line in proc.stdout:
            if line.startswith("prefix "):
                prefix = line.split()[1]
                break
        assert prefix, proc.stdout.read()
        token = prefix.rstrip(".")
        assert len(scratch.leftovers(stack, token)) >= 18  # every registered topic
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=120)[0]
        assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
        assert scratch.leftovers(stack, token) == [], out
    finally:
        proc.kill()
        proc.wait(10)
        if prefix:
            scratch.delete_owned(stack, prefix.rstrip("."))


def test_a_session_that_leaves_a_topic_ends_with_an_error_naming_it(stack: Settings,
                                                                    tmp_path: Path) -> None:
    (tmp_path / "test_leaks.py").write_text(LEAKING)
    proc = _pytest(stack, tmp_path / "test_leaks.py")
    out = proc.communicate(timeout=120)[0]
    name = next(line.split()[1] for line in out.splitlines() if line.startswith("leaked "))
    try:
        assert proc.returncode == pytest.ExitCode.TESTS_FAILED, out
        assert "1 passed, 1 error" in out, out
        assert "1 topics of this session were left on the broker" in out, out
        assert name in out.split("left on the broker", 1)[1], out
        assert scratch.leftovers(stack, name) == []  # and deleted by the check
    finally:
        scratch.delete_owned(stack, name)
