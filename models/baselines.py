"""The models XGBoost is compared with, on the same split: logistic regression, random
forest and (unsupervised) isolation forest. Each returns a scorer: higher = more fraud-like."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from sklearn.ensemble import IsolationForest, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

Scorer = Callable[[np.ndarray], np.ndarray]


def _signed_log(X: np.ndarray) -> np.ndarray:
    """Tame heavy tails (amounts in minor units, seconds) for the linear model."""
    return np.sign(X) * np.log1p(np.abs(X))


def logistic_regression(X: np.ndarray, y: np.ndarray, seed: int, nthread: int) -> Scorer:
    model = make_pipeline(
        FunctionTransformer(_signed_log),
        StandardScaler(),
        LogisticRegression(class_weight="balanced", max_iter=2000, C=0.5, random_state=seed),
    )
    model.fit(X, y)
    return lambda Z: model.predict_proba(Z)[:, 1]


def random_forest(X: np.ndarray, y: np.ndarray, seed: int, nthread: int) -> Scorer:
    model = RandomForestClassifier(
        n_estimators=150,
        min_samples_leaf=3,
        max_features="sqrt",
        class_weight="balanced_subsample",
        max_samples=min(1.0, 100_000 / max(len(y), 1)),
        n_jobs=nthread,
        random_state=seed,
    )
    model.fit(X, y)
    return lambda Z: model.predict_proba(Z)[:, 1]


def isolation_forest(X: np.ndarray, y: np.ndarray, seed: int, nthread: int) -> Scorer:
    """Unsupervised: fit on all training rows, labels unused; score = anomaly."""
    model = IsolationForest(
        n_estimators=200, max_samples=min(4096, len(X)), n_jobs=nthread, random_state=seed
    )
    model.fit(X)
    return lambda Z: -model.score_samples(Z)


BASELINES: dict[str, Callable[..., Scorer]] = {
    "logistic_regression": logistic_regression,
    "random_forest": random_forest,
    "isolation_forest": isolation_forest,
}


def fit_baselines(
    X: np.ndarray, y: np.ndarray, seed: int, nthread: int = 2
) -> dict[str, tuple[Scorer, float]]:
    """Each baseline's scorer and its fit time in seconds."""
    out = {}
    for name, fit in BASELINES.items():
        started = time.perf_counter()
        scorer = fit(X, y, seed, nthread)
        out[name] = (scorer, time.perf_counter() - started)
    return out
