"""A model registry with one constant model, so that tests of the scoring wiring decide on
rules and policy alone, whatever the committed champion is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xgboost as xgb

from models.registry import ModelRegistry
from processors.features import FEATURE_NAMES


def constant_model_registry(root: Path, probability: float = 0.02) -> Path:
    """A registry at ``root`` whose champion scores every row ``probability``."""
    names = list(FEATURE_NAMES)
    X = np.zeros((4, len(names)), dtype=np.float32)
    params = {"objective": "binary:logistic", "base_score": probability, "eta": 0.0,
              "max_depth": 1, "nthread": 1}
    booster = xgb.train(params, xgb.DMatrix(X, [0, 1, 0, 1], feature_names=names), 1)
    registry = ModelRegistry(root)
    version = registry.save(booster, {"feature_names": names, "version": "constant-test"})
    registry.promote(version)
    return root
