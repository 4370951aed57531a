"""``sentinel bench pipeline --worker-cpus``: the CPUs asked for, checked against those this
process may use; every thread of a process moved onto CPUs and back (``pin``, ``unpin``), a
process tree found from the parent ids; and a Faust process the bench starts (``spawn``) on
the CPUs asked, with the threads it starts afterwards; and the CPU the rest of the machine
spends beside a run, per group of processes (``cpu_sample``, ``cpu_busy``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.process import cpu_seconds, pin, process_tree, stop_group, unpin
from sinks.testing import wait_until
from streams.bench import CpuSplit, cpu_busy, cpu_sample, spawn

pytestmark = pytest.mark.unit

CPUS = sorted(os.sched_getaffinity(0))
# A child with a second thread; both wait until the test stops it. (On two CPUs or more,
# pinning to the last one is a change the test can see; CI has two.)
TWO_THREADS = ("import threading\n"
               "threading.Thread(target=threading.Event().wait).start()\n"
               "{ready}\n"
               "threading.Event().wait()\n")


def test_the_worker_cpus_leave_the_others_to_the_broker_and_the_load():
    split = CpuSplit.parse("1", {0, 1})
    assert split == CpuSplit(frozenset({1}), frozenset({0}))
    assert split.report() == {"workers": [1], "others": [0]}
    assert CpuSplit.parse("2,3", {0, 1, 2, 3}).others == {0, 1}


@pytest.mark.parametrize(("text", "says"), [
    ("0,1", "leaves no CPU"),
    ("2", "CPU [2] is not one this process may use ([0, 1])"),
    ("one", "CPU numbers separated by commas"),
    ("", "CPU numbers separated by commas"),
])
def test_worker_cpus_that_cannot_be_given_are_refused_with_the_reason(text, says):
    with pytest.raises(ValueError, match=r"--worker-cpus") as refused:
        CpuSplit.parse(text, {0, 1})
    assert says in str(refused.value)


def _threads(pid: int) -> list[int]:
    return [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()]


def test_every_thread_of_a_process_is_moved_and_moved_back():
    script = TWO_THREADS.format(ready="print('up', flush=True)")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout.readline() == "up\n"
        threads = _threads(proc.pid)
        assert len(threads) == 2
        before = {tid: os.sched_getaffinity(tid) for tid in threads}
        moved = pin([proc.pid], {CPUS[-1]})
        assert moved == before
        assert all(os.sched_getaffinity(tid) == {CPUS[-1]} for tid in threads)
        unpin(moved)
        assert {tid: os.sched_getaffinity(tid) for tid in threads} == before
    finally:
        stop_group(proc, grace_s=5)
        proc.stdout.close()


def test_a_process_tree_holds_the_children_of_its_children():
    proc = subprocess.Popen(["bash", "-c", "bash -c 'tail -f /dev/null & echo $!; wait' & wait"],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        grandchild = int(proc.stdout.readline())
        tree = process_tree(proc.pid)
        assert tree[0] == proc.pid
        assert grandchild in tree and len(tree) == 3
        assert process_tree(grandchild) == [grandchild]
        assert process_tree(2**22 + 1) == []  # above the kernel's pid_max: no such process
    finally:
        stop_group(proc, grace_s=5)
        proc.stdout.close()


def test_a_spawned_process_and_the_threads_it_starts_run_on_the_cpus_asked(tmp_path):
    module = tmp_path / "two_threads.py"
    module.write_text(TWO_THREADS.format(ready="open(__file__ + '.up', 'w').close()"))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = spawn("two_threads", env, tmp_path / "log", frozenset({CPUS[-1]}))
    try:
        up = Path(f"{module}.up")
        wait_until(lambda: up.exists() or proc.poll() is not None, 30.0, "the child's threads")
        assert up.exists(), (tmp_path / "log").read_text()
        threads = _threads(proc.pid)
        assert len(threads) == 2
        assert all(os.sched_getaffinity(tid) == {CPUS[-1]} for tid in threads)
    finally:
        stop_group(proc, grace_s=5)


def test_cpu_beside_is_what_a_group_spent_and_the_cores_it_kept_busy():
    before = cpu_sample({"bench": [os.getpid()], "none": []})
    started = cpu_seconds()
    while cpu_seconds() - started < 0.2:  # 0.2 s of this process's CPU, however long it takes
        sum(range(10_000))
    after = cpu_sample({"bench": [os.getpid()], "none": []})
    beside = cpu_busy(before, after)
    wall = after["at"] - before["at"]
    assert beside["bench"]["cpu_s"] >= 0.2
    assert beside["bench"]["busy"] == pytest.approx(beside["bench"]["cpu_s"] / wall)
    assert beside["none"] == {"cpu_s": 0.0, "busy": 0.0}


def test_a_process_gone_or_new_between_the_samples_counts_nothing():
    before = {"at": 10.0, "groups": {"servers": {1: 5.0, 2: 1.0}}}
    after = {"at": 12.0, "groups": {"servers": {1: 6.0, 3: 9.0}}}  # 2 ended, 3 started
    assert cpu_busy(before, after) == {"servers": {"cpu_s": 1.0, "busy": 0.5}}
