"""``sentinel bench pipeline``'s split of a scoring batch's wall time: the workers' phase
histograms (``sentinel_scoring_phase_seconds``) summed over their /metrics pages and
differenced between two reads; and the purchases decided and CPU time between them
(``cpu_seconds`` itself: tests/unit/test_infra_process.py); and the pacing of records sent
at a rate; and the collector kept off while times are stamped."""

from __future__ import annotations

import gc
import time

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from streams.bench import (
    BATCH_AGE,
    PHASES,
    collector_off,
    cpu_by_thread,
    decided,
    known_ratio,
    paced,
    phase_split,
    phase_totals,
    purchases,
    split,
    thread_totals,
)


def _page(seconds: dict[str, list[float]], batches: list[int] = (),
          ages: list[float] = ()) -> str:
    """A worker's /metrics page whose phase histogram observed ``seconds`` per phase, whose
    batch-size histogram observed ``batches``, and its batch-age histogram ``ages``."""
    registry = CollectorRegistry()
    histogram = Histogram("sentinel_scoring_phase_seconds", "phases", ["phase"],
                          registry=registry)  # fmt: skip
    for phase, values in seconds.items():
        for value in values:
            histogram.labels(phase).observe(value)
    age = Histogram("sentinel_batch_age_seconds", "batch age", registry=registry)
    for value in ages:
        age.observe(value)
    sizes = Histogram("sentinel_batch_size", "Purchases per scoring batch", registry=registry)
    for size in batches:
        sizes.observe(size)
    return generate_latest(registry).decode()


def test_totals_sum_each_phase_over_the_workers_pages() -> None:
    one = _page({"decide": [0.004, 0.006], "features": [0.002, 0.001]})
    two = _page({"decide": [0.010], "send": [0.0005]})
    totals = phase_totals([one, two])
    assert set(totals) == {*PHASES, BATCH_AGE}
    assert totals["decide"][0] == 0.004 + 0.006 + 0.010 and totals["decide"][1] == 3
    assert totals["features"] == [0.002 + 0.001, 2.0]
    assert totals["send"] == [0.0005, 1.0] and totals["entity_wait"] == [0.0, 0.0]


def test_the_split_is_the_mean_ms_per_batch_between_two_reads() -> None:
    before = phase_totals([_page({"decide": [0.1], "features": [0.3]})])
    after = phase_totals([_page({"decide": [0.1, 0.004, 0.006], "features": [0.3, 0.002, 0.004]})])
    split = phase_split(before, after)
    assert split["batches"] == 2
    assert abs(split["mean_ms"]["decide"] - 5.0) < 1e-9
    assert abs(split["mean_ms"]["features"] - 3.0) < 1e-9
    assert split["mean_ms"]["send"] == 0.0


def test_no_batch_between_two_reads_gives_no_means() -> None:
    same = phase_totals([_page({"decide": [0.1]})])
    assert phase_split(same, same) == {"batches": 0, "mean_ms": dict.fromkeys(PHASES),
                                       "batch_age_ms": None}


def test_the_batch_age_is_totalled_from_its_own_histogram() -> None:
    """``sentinel_batch_age_seconds`` summed over the pages under ``BATCH_AGE``, apart from
    the phases (whose histogram has a label of the same values)."""
    totals = phase_totals([_page({"decide": [0.5]}, ages=[0.02, 0.04]), _page({}, ages=[0.03])])
    assert totals[BATCH_AGE] == [0.02 + 0.04 + 0.03, 3.0]
    assert totals["decide"] == [0.5, 1.0]


def test_the_split_gives_the_mean_age_of_a_batch_at_its_start() -> None:
    before = phase_totals([_page({"decide": [0.1]}, ages=[0.5])])
    after = phase_totals([_page({"decide": [0.1, 0.004, 0.006]}, ages=[0.5, 0.02, 0.04])])
    assert abs(phase_split(before, after)["batch_age_ms"] - 30.0) < 1e-9


def test_purchases_decided_are_the_batch_sizes_summed_over_the_pages() -> None:
    assert decided([_page({}, [420, 7]), _page({}, [3])]) == 430
    assert decided([_page({})]) == 0


def test_the_split_gives_cpu_per_purchase_and_cores_busy() -> None:
    before = {"phases": phase_totals([_page({"decide": [0.1]})]), "purchases": 100.0,
              "cpu_s": 10.0, "at": 50.0}
    after = {"phases": phase_totals([_page({"decide": [0.1, 0.2]})]), "purchases": 600.0,
             "cpu_s": 10.3, "at": 50.6}
    result = split(before, after)
    assert result["batches"] == 1 and result["purchases"] == 500
    assert abs(result["cpu_us_per_purchase"] - 600.0) < 1e-6
    assert abs(result["cpu_busy"] - 0.5) < 1e-6
    assert split(after, after)["cpu_us_per_purchase"] is None


def test_cpu_ratio_is_unknown_when_no_purchase_was_decided_between_reads() -> None:
    """A backlog too small to be decided between the two readings has no CPU per purchase;
    the report's ``cpu_ratio_to_faust`` is then None instead of the run failing."""
    before = {"phases": {}, "purchases": 300, "cpu_s": 1.0, "at": 10.0}
    after = {"phases": {}, "purchases": 300, "cpu_s": 1.2, "at": 11.0}
    phases = split({**before, "phases": _totals()}, {**after, "phases": _totals()})
    assert phases["cpu_us_per_purchase"] is None
    assert known_ratio(165.0, phases["cpu_us_per_purchase"]) is None
    assert known_ratio(165.0, 330.0) == 0.5
    assert known_ratio(None, 330.0) is None


def _totals() -> dict[str, list[float]]:
    return {phase: [0.0, 0] for phase in (*PHASES, BATCH_AGE)}


def test_paced_yields_each_index_when_it_is_due():
    started = time.perf_counter()
    seen = [(i, time.perf_counter() - started) for i in paced(5, 100.0)]
    assert [i for i, _ in seen] == [0, 1, 2, 3, 4]
    assert all(at >= i / 100.0 for i, at in seen)  # never before its time


def _threads_page(seconds: dict[str, float]) -> str:
    """A worker's /metrics page whose thread CPU counter says ``seconds`` per thread."""
    registry = CollectorRegistry()
    counter = Counter("sentinel_thread_cpu_seconds", "by thread", ["thread"], registry=registry)
    for name, value in seconds.items():
        counter.labels(name).inc(value)
    return generate_latest(registry).decode()


def test_thread_cpu_is_summed_by_name_over_the_workers_pages() -> None:
    pages = [_threads_page({"MainThread": 2.0, "faust-consumer": 0.5}),
             _threads_page({"MainThread": 1.0, "librdkafka": 0.25})]
    assert thread_totals(pages) == {"MainThread": 3.0, "faust-consumer": 0.5, "librdkafka": 0.25}


def test_the_split_gives_each_threads_cpu_per_purchase_largest_first() -> None:
    """A thread that used no CPU between the readings is left out; one that started between
    them counts from 0."""
    base = {"phases": _totals(), "cpu_s": 0.0, "at": 0.0}
    before = {**base, "purchases": 100.0,
              "threads": {"MainThread": 1.0, "faust-consumer": 0.2, "lag-monitor": 0.01}}
    after = {**base, "purchases": 1100.0,
             "threads": {"MainThread": 1.5, "faust-consumer": 0.3, "lag-monitor": 0.01,
                         "asyncio-to-thread": 0.05}}
    by_thread = split(before, after)["cpu_us_per_purchase_by_thread"]
    assert list(by_thread) == ["MainThread", "faust-consumer", "asyncio-to-thread"]
    assert abs(by_thread["MainThread"] - 500.0) < 1e-6
    assert abs(by_thread["faust-consumer"] - 100.0) < 1e-6
    assert abs(by_thread["asyncio-to-thread"] - 50.0) < 1e-6


def test_the_floors_cpu_a_record_is_split_by_thread_read_from_outside() -> None:
    """``cpu_by_thread``: the process's main thread (its id is the pid) as MainThread, the
    others by kernel name, librdkafka's together, per record; unused and new threads as in
    ``split``."""
    before = {40: ("python", 1.0), 41: ("faust-consumer", 0.5), 42: ("rdk:broker1", 0.1),
              43: ("rdk:main", 0.0), 44: ("lag", 0.2)}
    after = {40: ("python", 1.3), 41: ("faust-consumer", 0.6), 42: ("rdk:broker1", 0.12),
             43: ("rdk:main", 0.01), 44: ("lag", 0.2), 45: ("python", 0.02)}
    used = cpu_by_thread(before, after, pid=40, records=1000)
    assert list(used) == ["MainThread", "faust-consumer", "librdkafka", "python"]
    assert abs(used["MainThread"] - 300.0) < 1e-6
    assert abs(used["faust-consumer"] - 100.0) < 1e-6
    assert abs(used["librdkafka"] - 30.0) < 1e-6
    assert abs(used["python"] - 20.0) < 1e-6


def test_the_fixed_rates_get_every_purchase_they_ask_for() -> None:
    """A simulated month of ``n // 8`` users buys fewer than ``n`` (2 000 users: 5 408 of the
    7 501 the fixed rates asked for, so 1 000 /s ran 2.9 s, not 5); with a user for each
    purchase asked, the month holds them all, each wallet's in its event-time order."""
    assert len(purchases(7_501, seed=29)) < 7_501
    got = purchases(7_501, seed=29, users=7_501)
    assert len(got) == 7_501
    by_wallet: dict[str, list] = {}
    for p in got:
        by_wallet.setdefault(p["wallet"], []).append(p["occurred_at"])
    assert all(times == sorted(times) for times in by_wallet.values())


def test_the_collector_is_off_inside_and_as_it_was_after() -> None:
    assert gc.isenabled()
    with collector_off():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_off():
        raise RuntimeError("a failed run")
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_off():
            pass
        assert not gc.isenabled()  # left off, as it was
    finally:
        gc.enable()
