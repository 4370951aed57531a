"""The decision policy: hard rules, rule score and model probability → one of four verdicts.

    final = 1 - (1 - model) * (1 - RULE_WEIGHT * rule)        (RULE_WEIGHT = 0.8)

a noisy-OR of the two, with the rule evidence discounted. Properties:

- a confident model alone decides: with no rule evidence ``final == model``, so a model
  probability over ``block`` blocks;
- rule evidence alone reaches at most 0.8: enough for REQUIRE_2FA (rule > 0.5) or
  MANUAL_REVIEW (rule > 0.8125), never BLOCKED — only a hard rule (a blocklist hit) or the
  model with rules can block;
- moderate agreement escalates: model 0.5 with rule 0.5 gives 0.70 (MANUAL_REVIEW).

Verdicts use strict ``>``: final > block → BLOCKED, > review → MANUAL_REVIEW, > two_fa →
REQUIRE_2FA, else APPROVED. Thresholds come from the rules file (``[policy]``, per organizer).

``two_fa_model`` (default 1.0: off) steps an APPROVED purchase up to REQUIRE_2FA when the
model's probability alone is over it. The final score mixes two scales: a trained probability
and a hand-weighted sum of weak rules that fire for about a quarter of legit buyers (new
accounts, unverified phones, shared addresses). A single ``two_fa`` on that mix cannot go low
enough to challenge what the model finds moderately risky without challenging every buyer
with a few weak rules; this threshold puts the model's own operating point where the friction
budget allows (``sentinel tune`` chooses it on a labelled window).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

RULE_WEIGHT = 0.8


class Verdict(StrEnum):
    APPROVED = "APPROVED"
    REQUIRE_2FA = "REQUIRE_2FA"
    MANUAL_REVIEW = "MANUAL_REVIEW"
    BLOCKED = "BLOCKED"


VERDICTS = tuple(Verdict)  # ``decide_columns`` codes: index into this, APPROVED = 0


@dataclass(frozen=True, slots=True)
class Thresholds:
    block: float = 0.85
    review: float = 0.65
    two_fa: float = 0.40
    two_fa_model: float = 1.0  # the model's probability alone over it: REQUIRE_2FA (1.0: off)

    def __post_init__(self) -> None:
        if not 0.0 <= self.two_fa <= self.review <= self.block <= 1.0:
            raise ValueError(
                f"thresholds must satisfy 0 <= two_fa <= review <= block <= 1, got "
                f"two_fa={self.two_fa}, review={self.review}, block={self.block}"
            )
        if not 0.0 <= self.two_fa_model <= 1.0:
            raise ValueError(f"two_fa_model must be in [0, 1], got {self.two_fa_model}")


DEFAULT_THRESHOLDS = Thresholds()


def _clamp(x: float) -> float:
    return 0.0 if x != x or x < 0.0 else (1.0 if x > 1.0 else x)  # NaN → 0


def combine(model_score: float, rule_score: float, rule_weight: float = RULE_WEIGHT) -> float:
    """The final risk in [0, 1] (see the module docstring)."""
    model, rule = _clamp(model_score), _clamp(rule_score)
    return _clamp(model + (1.0 - model) * rule_weight * rule)  # == 1 - (1-m)(1-w*r)


def verdict_for(score: float, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> Verdict:
    if score > thresholds.block:
        return Verdict.BLOCKED
    if score > thresholds.review:
        return Verdict.MANUAL_REVIEW
    if score > thresholds.two_fa:
        return Verdict.REQUIRE_2FA
    return Verdict.APPROVED


def decide(
    model_score: float,
    rule_score: float,
    hard_block: bool,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    rule_weight: float = RULE_WEIGHT,
) -> tuple[Verdict, float]:
    """(verdict, final score). A hard rule forces BLOCKED with final score 1.0; an APPROVED
    purchase whose model score alone is over ``two_fa_model`` gets REQUIRE_2FA."""
    if hard_block:
        return Verdict.BLOCKED, 1.0
    final = combine(model_score, rule_score, rule_weight)
    verdict = verdict_for(final, thresholds)
    if verdict == Verdict.APPROVED and _clamp(model_score) > thresholds.two_fa_model:
        return Verdict.REQUIRE_2FA, final
    return verdict, final


def decide_columns(
    model_scores: np.ndarray,
    rule_scores: np.ndarray,
    hard_block: np.ndarray,
    thresholds: np.ndarray,
    rule_weight: float = RULE_WEIGHT,
) -> tuple[np.ndarray, np.ndarray]:
    """``decide`` over a batch: (verdict codes into ``VERDICTS``, final scores), float64.

    ``thresholds`` is n x 3 (block, review, two_fa) or n x 4 (and two_fa_model) per row, in
    the order ``Thresholds`` checks (two_fa <= review <= block), so a row's code is the
    number of the three its final score is over. The same float operations in the same order
    as the scalar functions, so each row equals ``decide`` on its values."""
    model, rule = _clamp_columns(model_scores), _clamp_columns(rule_scores)
    final = _clamp_columns(model + (1.0 - model) * rule_weight * rule)
    codes = (final > thresholds[:, :3].T).sum(axis=0)
    if thresholds.shape[1] > 3:
        codes = np.where((codes == 0) & (model > thresholds[:, 3]), 1, codes)
    hard = np.asarray(hard_block, dtype=bool)
    return np.where(hard, 3, codes), np.where(hard, 1.0, final)


def _clamp_columns(x: np.ndarray) -> np.ndarray:
    """``_clamp`` of each value: over 1 → 1, at least 0 → itself, negative or NaN → 0."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x > 1.0, 1.0, np.where(x >= 0.0, x, 0.0))
