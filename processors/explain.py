"""Explanations for a decision: top feature contributions and rule results as reasons.

``top_contributions`` takes one row of per-feature contributions to the model's margin (as
XGBoost's ``pred_contribs`` gives them: one per feature, optionally followed by the bias)
and keeps the ``k`` largest by magnitude. ``reasons`` turns rule results into the
``Reason`` records of ``schemas/decision.avsc``: ``{code, category, score, detail}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import itemgetter

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
    # each row's values at its order: take_along_axis's own indexing, without the index
    # arrays it builds in Python on every call (~10 µs, most of a live batch's few rows)
    top = values[np.arange(len(values))[:, None], order].tolist()
    return [{names[i]: v for i, v in zip(idx, row, strict=True) if v != 0.0}
            for idx, row in zip(order.tolist(), top, strict=True)]


def reasons(results: Iterable[RuleResult], limit: int | None = None) -> list[dict[str, object]]:
    """Rule results as Decision reasons, hard and highest-scoring first (ties by rule id)."""
    ranked = list(results)
    if len(ranked) > 1:
        # The order of the key (not hard, -score, rule_id), as three stable sorts on the
        # fields themselves, least significant first: C key functions instead of a Python one
        # per result (reasons of 500 simulated purchases: 595 against 754 µs). The same order:
        # a reverse sort keeps ties in place, rule ids are distinct within a purchase, and
        # scores are never NaN (the rules engine makes NaN 0).
        ranked.sort(key=_RULE_ID)
        ranked.sort(key=_SCORE, reverse=True)
        ranked.sort(key=_HARD, reverse=True)
    return [{"code": rule_id, "category": category, "score": float(score), "detail": reason}
            for rule_id, category, score, reason, _ in ranked[:limit]]


_RULE_ID, _SCORE, _HARD = itemgetter(0), itemgetter(2), itemgetter(4)  # RuleResult's fields
