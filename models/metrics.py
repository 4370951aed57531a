"""Evaluation of fraud scores: ranking quality, recall at fixed false-positive rates, per
pattern recall, confusion matrices at the policy thresholds and calibration."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from processors.policy import DEFAULT_THRESHOLDS

# The policy's default thresholds, named by the verdict above them (one definition:
# processors.policy.Thresholds).
POLICY_THRESHOLDS = {"require_2fa": DEFAULT_THRESHOLDS.two_fa,
                     "manual_review": DEFAULT_THRESHOLDS.review, "blocked": DEFAULT_THRESHOLDS.block}
FPR_TARGETS = {"1pct": 0.01, "2pct": 0.02}


def operating_point(
    y: np.ndarray, scores: np.ndarray, max_fpr: float
) -> tuple[float, float, float]:
    """(recall, fpr, threshold) of the best recall with false-positive rate <= ``max_fpr``;
    a row is flagged when its score is >= the threshold."""
    fpr, tpr, thresholds = roc_curve(y, scores)
    ok = np.flatnonzero(fpr <= max_fpr)
    best = ok[np.argmax(tpr[ok])]
    return float(tpr[best]), float(fpr[best]), float(min(thresholds[best], 1e9))


def confusion(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, int]:
    flagged = scores >= threshold
    return {
        "tp": int(np.sum(flagged & (y == 1))),
        "fp": int(np.sum(flagged & (y == 0))),
        "tn": int(np.sum(~flagged & (y == 0))),
        "fn": int(np.sum(~flagged & (y == 1))),
    }


def recall_by_pattern(
    patterns: np.ndarray, scores: np.ndarray, threshold: float
) -> dict[str, float]:
    out = {}
    for name in sorted(set(patterns.tolist()) - {""}):
        mine = patterns == name
        out[name] = float(np.mean(scores[mine] >= threshold))
    return out


def calibration(y: np.ndarray, scores: np.ndarray, bins: int = 10) -> list[dict]:
    """Reliability bins of equal width over [0, 1]: count, mean score, observed fraud rate."""
    idx = np.minimum((np.clip(scores, 0, 1) * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        mine = idx == b
        n = int(mine.sum())
        out.append(
            {
                "lo": b / bins,
                "hi": (b + 1) / bins,
                "count": n,
                "mean_score": float(scores[mine].mean()) if n else None,
                "fraud_rate": float(y[mine].mean()) if n else None,
            }
        )
    return out


def ranking(y: np.ndarray, scores: np.ndarray) -> dict:
    """The headline numbers, comparable across models."""
    out = {
        "auc_roc": float(roc_auc_score(y, scores)),
        "auc_pr": float(average_precision_score(y, scores)),
    }
    for name, max_fpr in FPR_TARGETS.items():
        recall, fpr, threshold = operating_point(y, scores, max_fpr)
        out[f"recall_at_fpr_{name}"] = recall
        out[f"fpr_at_fpr_{name}"] = fpr
        out[f"threshold_at_fpr_{name}"] = threshold
    return out


def evaluate(y: np.ndarray, scores: np.ndarray, patterns: np.ndarray) -> dict:
    """Everything the report shows for one model on one split."""
    y, scores = np.asarray(y).astype(int), np.asarray(scores, dtype=np.float64)
    out = ranking(y, scores)
    out["rows"], out["fraud"] = int(len(y)), int(y.sum())
    out["per_pattern_recall"] = recall_by_pattern(patterns, scores, out["threshold_at_fpr_2pct"])
    out["per_pattern_recall_policy"] = {
        name: recall_by_pattern(patterns, scores, t) for name, t in POLICY_THRESHOLDS.items()
    }
    out["confusion"] = {f"{t:.2f}": confusion(y, scores, t) for t in POLICY_THRESHOLDS.values()}
    out["calibration"] = calibration(y, scores)
    out["pattern_counts"] = {
        n: int(np.sum(patterns == n)) for n in sorted(set(patterns.tolist()) - {""})
    }
    return out


def roc_points(y: np.ndarray, scores: np.ndarray, n: int = 200) -> list[tuple[float, float]]:
    """A thinned ROC curve (fpr, tpr) for plotting."""
    fpr, tpr, _ = roc_curve(y, scores)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(n, len(fpr))).astype(int))
    return [(float(fpr[i]), float(tpr[i])) for i in keep]
