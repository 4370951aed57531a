"""Explanations for a decision: top feature contributions and rule results as reasons.

``top_contributions`` takes one row of per-feature contributions to the model's margin (as
XGBoost's ``pred_contribs`` gives them: one per feature, optionally followed by the bias)
and keeps the ``k`` largest by magnitude. ``reasons`` turns rule results into the
``Reason`` records of ``schemas/decision.avsc``: ``{code, category, score, detail}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from processors.compute import FEATURE_NAMES
from processors.rules.base import RuleResult


def top_contributions(
    contributions: Sequence[float], names: Sequence[str] = FEATURE_NAMES, k: int = 5
) -> dict[str, float]:
    """The ``k`` features that moved the score most, largest magnitude first (bias dropped)."""
    return top_contributions_batch(np.asarray([contributions], dtype=np.float64), names, k)[0]


def top_contributions_batch(
    contributions: np.ndarray, names: Sequence[str] = FEATURE_NAMES, k: int = 5
) -> list[dict[str, float]]:
    """``top_contributions`` of each row of a (rows x features[+bias]) matrix, in one sort.

    Ties in magnitude keep the feature order (a stable sort); zeros among the ``k`` are left
    out."""
    values = np.asarray(contributions)
    if values.ndim != 2:
        raise ValueError(f"contributions must be a matrix, got shape {values.shape}")
    if values.shape[1] == len(names) + 1:
        values = values[:, :-1]  # the trailing bias term
    if values.shape[1] != len(names):
        raise ValueError(f"{values.shape[1]} contributions for {len(names)} feature names")
    order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(values, order, axis=1).tolist()
    return [{names[i]: v for i, v in zip(idx, row, strict=True) if v != 0.0}
            for idx, row in zip(order.tolist(), top, strict=True)]


def reasons(results: Iterable[RuleResult], limit: int | None = None) -> list[dict[str, object]]:
    """Rule results as Decision reasons, hard and highest-scoring first (ties by rule id)."""
    ranked = sorted(results, key=_rank)
    return [{"code": rule_id, "category": category, "score": float(score), "detail": reason}
            for rule_id, category, score, reason, _ in ranked[:limit]]


def _rank(r: RuleResult) -> tuple[bool, float, str]:
    return (not r.hard, -r.score, r.rule_id)
