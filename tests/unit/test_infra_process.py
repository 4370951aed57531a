"""stop_group: SIGTERM with a grace period, then SIGKILL for a process that ignores it;
interrupt_on_term: a run stopped with SIGTERM still runs its finally blocks; cpu_seconds: a
process's CPU time from /proc, which grows while it works and not while it waits."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from infra.process import (
    cpu_seconds,
    name_this_thread,
    proc_stat,
    stop_group,
    thread_cpu_seconds,
)

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


def test_cpu_seconds_grow_while_a_process_works_not_while_it_waits():
    burn = ("import sys, time\n"
            "end = time.process_time() + 0.3\n"
            "while time.process_time() < end: pass\n"
            "print('worked', flush=True)\n"
            "sys.stdin.read()\n")  # then waits for its stdin to close
    proc = subprocess.Popen([sys.executable, "-c", burn], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "worked\n"
        worked = cpu_seconds(proc.pid)
        assert worked >= 0.25
        end = time.process_time() + 0.2  # time passes here while the child waits
        while time.process_time() < end:
            pass
        assert cpu_seconds(proc.pid) - worked < 0.05
        assert proc_stat(proc.pid)[0] == "S"  # sleeping on its stdin
    finally:
        proc.stdin.close()
        proc.wait(10)
    assert cpu_seconds(proc.pid) == 0.0 and proc_stat(proc.pid) == []  # gone


def test_thread_cpu_seconds_name_each_thread_of_a_process_and_its_cpu():
    script = ("import ctypes, threading, time, sys\n"
              "def burn():\n"
              "    ctypes.CDLL(None).prctl(15, b'burner', 0, 0, 0)\n"  # PR_SET_NAME
              "    end = time.thread_time() + 0.3\n"
              "    while time.thread_time() < end: pass\n"
              "    print('worked', flush=True)\n"
              "    sys.stdin.read()\n"
              "threading.Thread(target=burn).start()\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "worked\n"
        threads = thread_cpu_seconds(proc.pid)
        by_name = {name: seconds for name, seconds in threads.values()}
        assert by_name["burner"] >= 0.25
        assert proc.pid in threads  # the main thread's id is the process's
        assert sum(s for _, s in threads.values()) <= cpu_seconds(proc.pid) + 0.02
    finally:
        proc.stdin.close()
        proc.wait(10)
    assert thread_cpu_seconds(proc.pid) == {}  # gone


def test_a_named_thread_is_named_in_python_and_in_the_kernel():
    import threading
    from pathlib import Path

    seen = {}

    def run():
        name_this_thread("a-rather-long-thread-name")
        me = threading.current_thread()
        seen["python"] = me.name
        seen["kernel"] = Path(f"/proc/self/task/{me.native_id}/comm").read_text().strip()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    assert seen == {"python": "a-rather-long-thread-name", "kernel": "a-rather-long-t"}
