"""Explanations for a decision: top feature contributions and rule results as reasons.

``top_contributions`` takes one row of per-feature contributions to the model's margin (as
XGBoost's ``pred_contribs`` gives them: one per feature, optionally followed by the bias)
and keeps the ``k`` largest by magnitude. ``reasons`` turns rule results into the
``Reason`` records of ``schemas/decision.avsc``: ``{code, category, score, detail}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from processors.rules.base import RuleResult
from tests.support.legacy_path.compute import FEATURE_NAMES


def top_contributions(
    contributions: Sequence[float], names: Sequence[str] = FEATURE_NAMES, k: int = 5
) -> dict[str, float]:
    """The ``k`` features that moved the score most, largest magnitude first (bias dropped)."""
    values = [float(v) for v in contributions]
    if len(values) == len(names) + 1:
        values = values[:-1]  # the trailing bias term
    if len(values) != len(names):
        raise ValueError(f"{len(values)} contributions for {len(names)} feature names")
    order = sorted(range(len(values)), key=lambda i: (-abs(values[i]), i))
    return {names[i]: values[i] for i in order[:k] if values[i] != 0.0}


def reasons(results: Iterable[RuleResult], limit: int | None = None) -> list[dict[str, object]]:
    """Rule results as Decision reasons, hard and highest-scoring first (ties by rule id)."""
    ranked = sorted(results, key=lambda r: (not r.hard, -r.score, r.rule_id))
    return [
        {"code": r.rule_id, "category": r.category, "score": float(r.score), "detail": r.reason}
        for r in ranked[:limit]
    ]
