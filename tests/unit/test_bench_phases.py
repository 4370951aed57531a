"""``sentinel bench pipeline``'s split of a scoring batch's wall time: the workers' phase
histograms (``sentinel_scoring_phase_seconds``) summed over their /metrics pages and
differenced between two reads."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from streams.bench import PHASES, phase_split, phase_totals


def _page(seconds: dict[str, list[float]]) -> str:
    """A worker's /metrics page whose phase histogram observed ``seconds`` per phase."""
    registry = CollectorRegistry()
    histogram = Histogram("sentinel_scoring_phase_seconds", "phases", ["phase"],
                          registry=registry)  # fmt: skip
    for phase, values in seconds.items():
        for value in values:
            histogram.labels(phase).observe(value)
    return generate_latest(registry).decode()


def test_totals_sum_each_phase_over_the_workers_pages() -> None:
    one = _page({"decide": [0.004, 0.006], "features": [0.002, 0.001]})
    two = _page({"decide": [0.010], "send": [0.0005]})
    totals = phase_totals([one, two])
    assert set(totals) == set(PHASES)
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
    assert phase_split(same, same) == {"batches": 0, "mean_ms": dict.fromkeys(PHASES)}
