"""Stopping a child process group: SIGTERM, a grace period, then SIGKILL (a Faust worker may
ignore SIGTERM while it shuts down; DESIGN.md "Known facts"), and being stopped: a run that
cleans up after itself turns SIGTERM into an interrupt (``interrupt_on_term``). Also what
``/proc/<pid>/stat`` says of a process and of its threads (``proc_stat``, ``cpu_seconds``,
``thread_cpu_seconds``), and which CPUs a process tree's threads may run on (``pin``,
``unpin``: ``sentinel bench pipeline --worker-cpus``)."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import threading
from collections.abc import Iterable
from pathlib import Path

PR_SET_NAME = 15  # prctl(2): the calling thread's kernel name, at most 15 bytes


def proc_stat(pid: int | str) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (the state first: field 3), [] when
    the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return []


def cpu_seconds(pid: int | str = "self") -> float:
    """User plus system CPU time of a process, all its threads (fields 14 and 15); 0.0 when
    it is gone."""
    return _cpu_s(proc_stat(pid))


def process_tree(*pids: int) -> list[int]:
    """These processes and every process below them (children, their children, ...), from
    the parent ids in ``/proc/<n>/stat`` (read once); a process already gone is left out."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := proc_stat(entry.name)):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree: list[int] = []
    todo = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    while todo:
        tree.append(current := todo.pop())
        todo.extend(children.get(current, ()))
    return tree


def pin(pids: Iterable[int], cpus: set[int]) -> dict[int, set[int]]:
    """Every thread of these processes onto ``cpus`` (threads they start later inherit it
    from the thread that starts them); the CPUs each thread had before, by thread id, for
    ``unpin``. A process or thread that ends meanwhile is skipped."""
    before: dict[int, set[int]] = {}
    for pid in pids:
        try:
            tids = [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()]
        except OSError:
            continue
        for tid in tids:
            try:
                had = os.sched_getaffinity(tid)
                os.sched_setaffinity(tid, cpus)
            except ProcessLookupError:
                continue
            before.setdefault(tid, had)
    return before


def unpin(before: dict[int, set[int]]) -> None:
    """Each thread ``pin`` moved back onto the CPUs it had (one that ended is skipped)."""
    for tid, cpus in before.items():
        try:
            os.sched_setaffinity(tid, cpus)
        except ProcessLookupError:
            continue


def _cpu_s(fields: list[str]) -> float:
    """User plus system CPU seconds from ``proc_stat``'s fields (0.0 for none)."""
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") if fields else 0.0


def thread_cpu_seconds(pid: int | str = "self") -> dict[int, tuple[str, float]]:
    """Each thread of a process: its id → (its kernel name, ``comm``: what the thread set,
    else the process's; its user plus system CPU seconds); {} when the process is gone."""
    out: dict[int, tuple[str, float]] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        fields = proc_stat(f"{pid}/task/{task.name}")
        try:
            comm = (task / "comm").read_text().strip()
        except OSError:
            continue  # the thread ended meanwhile
        if fields:
            out[int(task.name)] = (comm, _cpu_s(fields))
    return out


def name_this_thread(name: str) -> None:
    """Name the calling thread in Python and in the kernel (``/proc/<pid>/task/<tid>/comm``,
    ``top -H``, ``thread_cpu_seconds``; cut to 15 bytes), so tools outside the process tell
    it apart."""
    threading.current_thread().name = name
    try:
        ctypes.CDLL(None).prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the Python name is enough
        pass


def stop_group(proc: subprocess.Popen, grace_s: float = 15.0, kill_wait_s: float = 10.0) -> bool:
    """Stop ``proc`` (started with ``start_new_session=True``) and its children; True when
    it exited within the grace period, False when it had to be killed."""
    if proc.poll() is not None:
        return True
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace_s)
        return True
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(kill_wait_s)
        return False


def interrupt_on_term() -> None:
    """SIGTERM and SIGHUP raise ``KeyboardInterrupt`` in the main thread, as Ctrl-C does, so
    ``finally`` blocks and pytest's teardown still run when a run is stopped with ``kill``
    (by default Python dies at once: a killed test session or benchmark left its workers
    running and its topics on the shared broker)."""

    def interrupt(signum, _frame):
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)
