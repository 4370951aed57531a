"""Leakage suspects: features that separate fraud from legit almost on their own.

On simulated data a feature whose AUC alone exceeds 0.9 usually means the simulator makes
fraud do something legit users rarely do (the known case: ``secs_since_login_ok``, when every
fraudster logged in seconds before buying). The training report lists each suspect with its
distribution for legit and fraud, so a person can judge whether real traffic looks like that.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

THRESHOLD = 0.9
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
MISSING = -1.0


def single_feature_auc(x: np.ndarray, y: np.ndarray) -> float:
    """AUC of one feature as a score, either direction (0.5 = useless, 1 = separates)."""
    if len(np.unique(y)) < 2 or len(np.unique(x)) < 2:
        return 0.5
    auc = float(roc_auc_score(y, x))
    return max(auc, 1.0 - auc)


def distribution(x: np.ndarray) -> dict:
    present = x[x != MISSING]
    return {
        "rows": int(len(x)),
        "missing_share": float(np.mean(x == MISSING)) if len(x) else 0.0,
        "quantiles": {f"p{int(q * 100)}": float(np.quantile(present, q)) for q in QUANTILES}
        if len(present) else {},
    }


def leakage_suspects(
    X: np.ndarray, y: np.ndarray, names: tuple[str, ...], threshold: float = THRESHOLD
) -> dict:
    """Every feature's AUC alone, and the suspects (AUC > threshold) with distributions."""
    aucs = {name: single_feature_auc(X[:, j], y) for j, name in enumerate(names)}
    suspects = [
        {"feature": name, "auc_alone": auc,
         "legit": distribution(X[y == 0, names.index(name)]),
         "fraud": distribution(X[y == 1, names.index(name)])}
        for name, auc in sorted(aucs.items(), key=lambda kv: -kv[1]) if auc > threshold
    ]
    return {"threshold": threshold, "suspects": suspects,
            "auc_alone": dict(sorted(aucs.items(), key=lambda kv: -kv[1]))}
