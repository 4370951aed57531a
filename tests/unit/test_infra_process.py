"""stop_group: SIGTERM with a grace period, then SIGKILL for a process that ignores it; and
interrupt_on_term: a run stopped with SIGTERM still runs its finally blocks."""

from __future__ import annotations

import signal
import subprocess
import sys

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


def test_sigterm_interrupts_a_run_so_that_its_finally_blocks_run():
    script = ("import signal\nfrom infra.process import interrupt_on_term\ninterrupt_on_term()\n"
              "try:\n    print('up', flush=True)\n    signal.pause()\n"
              "finally:\n    print('cleaned up', flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "up\n"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert out == "cleaned up\n"
    assert "KeyboardInterrupt: signal SIGTERM" in err
    assert proc.returncode == -signal.SIGINT  # how Python ends on an uncaught interrupt
