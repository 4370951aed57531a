"""The worker's drift watch: PSI of live features against the champion's training
distribution becomes metrics and one ``model_drift`` event per drifted feature."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
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


def test_the_live_decider_converts_a_batch_once_for_the_decision_and_the_drift_watch(
        monkeypatch):  # fmt: skip
    """``LiveDecider.decide`` converts the feature rows once (``FeatureMatrix``): the
    decisions are those of ``decide_batch`` on the rows, and the drift watch holds the
    same float32 rows as when it converts the batch itself."""
    from types import SimpleNamespace

    from processors import decide
    from processors.decide import Blocked, FeatureMatrix, decide_batch
    from processors.rules import load_ruleset
    from streams.decider import LiveDecider

    holder = ModelHolder(expected_features=FEATURE_NAMES)
    ruleset = load_ruleset()
    rng = np.random.default_rng(3)
    rows = [tuple(rng.choice([0.0, 1.0, 3.5, -1.0], len(FEATURE_NAMES)).tolist())
            for _ in range(60)]  # fmt: skip
    purchases = [{"purchase_id": f"p{i}", "wallet": f"w{i % 7}", "occurred_at": NOW}
                 for i in range(len(rows))]  # fmt: skip
    decider = object.__new__(LiveDecider)
    decider.models = holder
    decider.rules = SimpleNamespace(current=lambda: ruleset, shadowed=set())
    decider.breaker = SimpleNamespace(observe=lambda outcomes: None)
    decider.blocklists = SimpleNamespace(blocked=lambda purchases: Blocked())
    decider.drift = DriftWatch(holder, check_s=60, clock=Clock())
    conversions = []
    as_matrix = decide.as_matrix

    def counted(features):
        if not isinstance(features, FeatureMatrix):  # converted already: nothing to do
            conversions.append(features)
        return as_matrix(features)

    monkeypatch.setattr(decide, "as_matrix", counted)
    outcomes = decider.decide(purchases, rows, NOW)
    assert conversions == [rows]
    expected = decide_batch(purchases, rows, holder.model, ruleset, Blocked(), NOW)
    assert [o.decision for o in outcomes] == [o.decision for o in expected]
    alone = DriftWatch(holder, check_s=60, clock=Clock())
    alone.observe(rows)
    assert len(decider.drift.monitor) == len(rows)
    assert all(
        a.tobytes() == b.tobytes()
        for a, b in zip(decider.drift.monitor._rows, alone.monitor._rows, strict=True)
    )
