"""Scoring a split the way the scorer does, global importance, and the model comparison."""

from __future__ import annotations

import numpy as np
import xgboost as xgb

from models import metrics as m
from models.baselines import fit_baselines
from models.dataset import Dataset


def predict(booster: xgb.Booster, X: np.ndarray) -> np.ndarray:
    """The same call the scorer makes (``LoadedModel.predict``)."""
    if len(X) == 0:
        return np.zeros(0, dtype=np.float32)
    return booster.inplace_predict(np.ascontiguousarray(X, dtype=np.float32))


def feature_importance(booster: xgb.Booster, data: Dataset, limit: int = 20_000) -> list[dict]:
    """Global importance: mean |SHAP contribution| per feature (XGBoost's pred_contribs)."""
    X = data.X[:limit]
    contrib = booster.predict(
        xgb.DMatrix(X, feature_names=list(data.feature_names)), pred_contribs=True
    )
    mean_abs = np.abs(contrib[:, :-1]).mean(axis=0)
    order = np.argsort(-mean_abs)
    return [
        {"feature": data.feature_names[j], "mean_abs_contribution": float(mean_abs[j])}
        for j in order
    ]


def compare_models(
    train: Dataset,
    splits: dict[str, Dataset],
    xgb_scores: dict[str, np.ndarray],
    xgb_seconds: float,
    *,
    baselines: bool = True,
    seed: int = 0,
    nthread: int = 2,
) -> dict:
    """Headline numbers per model and split; the baselines are fitted on ``train`` here."""
    table = {
        "xgboost": {
            "fit_seconds": xgb_seconds,
            **{s: m.ranking(d.y, xgb_scores[s]) for s, d in splits.items()},
        }
    }
    if baselines:
        for name, (scorer, seconds) in fit_baselines(train.X, train.y, seed, nthread).items():
            table[name] = {
                "fit_seconds": seconds,
                **{s: m.ranking(d.y, scorer(d.X)) for s, d in splits.items()},
            }
    return table
