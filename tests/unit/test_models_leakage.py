from __future__ import annotations

import numpy as np
import pytest

from models.leakage import leakage_suspects, single_feature_auc

pytestmark = pytest.mark.unit


def test_a_feature_that_separates_the_classes_alone_is_a_suspect_with_distributions():
    rng = np.random.default_rng(0)
    y = (rng.random(2000) < 0.1).astype(np.int8)
    leaky = np.where(y == 1, rng.uniform(0, 60, 2000), rng.uniform(3600, 86400, 2000))
    noise = rng.normal(size=2000)
    inverted = -leaky  # the other direction is as leaky
    X = np.column_stack([leaky, noise, inverted]).astype(np.float32)
    out = leakage_suspects(X, y, ("secs_since_login_ok", "noise", "minus"))
    names = [s["feature"] for s in out["suspects"]]
    assert set(names) == {"secs_since_login_ok", "minus"}
    first = out["suspects"][0]
    assert first["auc_alone"] > 0.99
    assert first["fraud"]["quantiles"]["p95"] < 60 <= 3600 < first["legit"]["quantiles"]["p5"]
    assert out["auc_alone"]["noise"] < 0.6


def test_missing_values_are_reported_not_counted_in_quantiles():
    y = np.array([0, 0, 0, 1, 1, 1], dtype=np.int8)
    X = np.array([[-1.0], [5.0], [6.0], [1.0], [1.0], [-1.0]], dtype=np.float32)
    out = leakage_suspects(X, y, ("f",), threshold=0.0)
    legit = out["suspects"][0]["legit"]
    assert legit["missing_share"] == pytest.approx(1 / 3)
    assert legit["quantiles"]["p5"] >= 5.0
    assert single_feature_auc(np.ones(4), np.array([0, 1, 0, 1])) == 0.5
