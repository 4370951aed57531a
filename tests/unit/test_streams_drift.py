"""The worker's drift watch: PSI of live features against the champion's training
distribution becomes metrics and one ``model_drift`` event per drifted feature."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from models.holder import ModelHolder
from processors.features import FEATURE_NAMES
from streams import metrics
from streams.decider import DriftWatch

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 2, 12, tzinfo=UTC)


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def rows(n: int, value: float) -> list[dict]:
    return [dict.fromkeys(FEATURE_NAMES, value) for _ in range(n)]


def test_drifted_features_raise_model_drift_events_after_the_check_interval():
    clock = Clock()
    watch = DriftWatch(ModelHolder(expected_features=FEATURE_NAMES), check_s=60, clock=clock)
    watch.observe(rows(600, 1e9))  # far outside anything seen in training
    assert watch.events(NOW) == []  # not yet due
    clock.t = 61
    events = watch.events(NOW)
    drifted = {e["details"]["feature"] for e in events}
    assert drifted and drifted <= set(FEATURE_NAMES)
    assert all(e["kind"] == "model_drift" and float(e["details"]["psi"]) > 0.15 for e in events)
    feature = next(iter(drifted))
    assert metrics.PSI.labels(feature)._value.get() > 0.15
    assert watch.events(NOW) == []  # next check only after another interval


def test_too_few_rows_give_no_verdict():
    clock = Clock()
    watch = DriftWatch(ModelHolder(expected_features=FEATURE_NAMES), check_s=0, clock=clock)
    watch.observe(rows(100, 1e9))
    clock.t = 1
    assert watch.events(NOW) == []
