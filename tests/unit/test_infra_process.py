"""stop_group: SIGTERM with a grace period, then SIGKILL for a process that ignores it."""

from __future__ import annotations

import subprocess

import pytest

from infra.process import stop_group

pytestmark = pytest.mark.unit


def _start(script: str) -> subprocess.Popen:
    return subprocess.Popen(["bash", "-c", script], start_new_session=True,
                            stdout=subprocess.PIPE, text=True)


def test_a_process_that_honours_sigterm_stops_gracefully():
    proc = _start("echo up; exec sleep 30")
    assert proc.stdout.readline() == "up\n"
    assert stop_group(proc, grace_s=10) is True
    assert proc.returncode == -15
    proc.stdout.close()


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace_period():
    proc = _start("trap '' TERM; echo up; while true; do sleep 1; done")
    assert proc.stdout.readline() == "up\n"
    assert stop_group(proc, grace_s=0.5) is False
    assert proc.returncode == -9
    proc.stdout.close()


def test_an_exited_process_is_left_alone():
    proc = _start("exit 3")
    proc.wait(10)
    assert stop_group(proc) is True and proc.returncode == 3
    proc.stdout.close()
