"""The champion committed in models/registry/ loads against today's features and scores."""

from __future__ import annotations

import numpy as np
import pytest

from models.dataset import build_dataset
from models.registry import DEFAULT_DIR, ModelRegistry, load_model
from models.simulator import SimConfig, simulate

pytestmark = pytest.mark.unit


def test_committed_champion_scores_out_of_the_box(monkeypatch):
    monkeypatch.delenv("SENTINEL_MODEL_DIR", raising=False)
    model = load_model()  # raises ModelMismatchError if processors' features changed: retrain
    meta = ModelRegistry(DEFAULT_DIR).metadata(model.version)
    assert (DEFAULT_DIR / model.version / "model.ubj").stat().st_size < 2_000_000
    data = build_dataset(simulate(SimConfig(seed=99, days=3, n_users=3000, fraud_rate=0.1)))
    scores = model.predict(data.X)
    assert scores.shape == (len(data),) and np.all((scores >= 0) & (scores <= 1))
    assert scores[data.y == 1].mean() > scores[data.y == 0].mean()
    assert meta["metrics"]["holdout"]["auc_roc"] > 0.9
