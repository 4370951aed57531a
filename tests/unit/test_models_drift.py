from __future__ import annotations

import numpy as np
import pytest

from models.drift import DriftMonitor, histogram, psi_kl, training_distribution

pytestmark = pytest.mark.unit


@pytest.fixture
def train() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.c_[rng.normal(size=20_000), rng.integers(0, 3, 20_000), np.full(20_000, -1.0)]


def test_histogram_bins_sum_to_one_and_keep_discrete_values_apart(train):
    dist = histogram(train[:, 1])
    assert dist["edges"] == [0.0, 1.0, 2.0]
    assert sum(dist["freq"]) + dist["missing"] == pytest.approx(1.0)
    assert all(f > 0.3 for f in dist["freq"][:3])


def test_same_distribution_has_no_drift(train):
    dists = training_distribution(train, ["a", "b", "c"])
    rng = np.random.default_rng(1)
    live = np.c_[rng.normal(size=5000), rng.integers(0, 3, 5000), np.full(5000, -1.0)]
    for j, name in enumerate("abc"):
        psi, kl = psi_kl(dists[name], live[:, j])
        assert psi < 0.02 and kl < 0.02


def test_monitor_flags_shifted_features_over_the_threshold(train):
    monitor = DriftMonitor(
        training_distribution(train, ["a", "b", "c"]), ["a", "b", "c"], window=3000
    )
    rng = np.random.default_rng(2)
    monitor.observe(np.c_[rng.normal(1.0, 1, 3000), rng.integers(0, 3, 3000), np.full(3000, 5.0)])
    report = monitor.report()
    assert set(report) == {"a", "b", "c"} and report["a"]["psi"] > 0.15
    assert monitor.drifted(report) == sorted(["a", "c"], key=lambda k: -report[k]["psi"])
    # the window slides: in-distribution rows push the shifted ones out
    monitor.observe(train[:3000])
    assert monitor.drifted() == [] and len(monitor) == 3000


def test_missing_values_count_as_their_own_bin(train):
    dist = histogram(train[:, 0])
    psi, _ = psi_kl(dist, np.full(1000, np.nan))
    assert psi > 1.0
