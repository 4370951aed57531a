"""Training rows' amount ratios are jittered beyond currency rounding, so a booster cannot
split a price tier on the residue that names the currency."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb

from models.training import JITTERED, TrainConfig, jitter_ratios

pytestmark = pytest.mark.unit

NAMES = ("price_deviation", "amount_vs_avg", "quantity")


def test_only_known_ratios_move_within_the_bound():
    X = np.array([[1.4, -1.0, 3.0], [2.2, 4.2, 1.0], [-1.0, 0.0, 2.0]] * 100, np.float32)
    out = jitter_ratios(X, NAMES, 0.003, seed=1)
    assert set(JITTERED) <= set(NAMES) and TrainConfig().ratio_jitter == 0.003
    np.testing.assert_array_equal(out[:, 2], X[:, 2])  # other features untouched
    missing = X[:, :2] < 0
    np.testing.assert_array_equal(out[:, :2][missing], X[:, :2][missing])  # missing stays
    ratio = out[:, :2][X[:, :2] > 0] / X[:, :2][X[:, :2] > 0]
    assert ratio.min() >= 1 - 0.0031 and ratio.max() <= 1 + 0.0031 and ratio.std() > 0.001
    np.testing.assert_array_equal(out, jitter_ratios(X, NAMES, 0.003, seed=1))  # seeded
    np.testing.assert_array_equal(jitter_ratios(X, NAMES, 0.0, seed=1), X)


def test_a_booster_no_longer_splits_a_tier_on_rounding_residue():
    """A tier at 1.4 whose rows are 1.39989 (one currency, mostly fraud) or 1.40003 (another,
    mostly legit), next to a base tier at 1.0: fitted on the raw values the booster scores
    the two halves of the tier apart; fitted on jittered ones it scores them alike."""
    rng = np.random.default_rng(0)
    n = 4_000
    tier = rng.random(n) < 0.5
    currency = rng.random(n) < 0.5
    pd_ = np.where(tier, np.where(currency, 1.39989, 1.40003), 1.0).astype(np.float32)
    y = (rng.random(n) < np.where(tier & currency, 0.6, 0.1)).astype(np.float32)
    X = np.column_stack([pd_, np.full(n, -1.0), rng.integers(1, 4, n)]).astype(np.float32)
    params = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "nthread": 1}

    def gap(train_X: np.ndarray) -> float:
        booster = xgb.train(params, xgb.DMatrix(train_X, y), num_boost_round=30)
        probe = np.array([[1.39989, -1, 2], [1.40003, -1, 2]], np.float32)
        a, b = booster.predict(xgb.DMatrix(probe))
        return abs(float(a) - float(b))

    assert gap(X) > 0.2
    assert gap(jitter_ratios(X, NAMES, 0.003, seed=2)) < 0.05
