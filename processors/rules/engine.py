"""Running a ruleset over purchases: results, a combined rule score, hard blocks, errors.

The rule score is a weighted noisy-OR: ``1 - prod(1 - weight_i * score_i)`` over the rules
that fired, clamped to [0, 1]. A rule that raises is isolated: logged, listed in
``errors``, and the other rules still run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from processors.rules.base import RuleContext, RuleResult
from processors.rules.ruleset import RuleSet

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Evaluation:
    results: list[RuleResult] = field(default_factory=list)
    rule_score: float = 0.0
    hard_block: bool = False
    errors: list[str] = field(default_factory=list)


def evaluate(ctx: RuleContext, ruleset: RuleSet, organizer_id: str | None = None) -> Evaluation:
    """Run the (organizer's view of the) ruleset's active rules over one purchase."""
    active = ruleset.for_organizer(organizer_id).active
    results: list[RuleResult] = []
    errors: list[str] = []
    survive, hard = 1.0, False
    for fn, params, weight, rule in active:
        try:
            hit = fn(ctx, params)
        except Exception as exc:  # a faulty rule must not stop the others
            errors.append(f"{rule.id}: {type(exc).__name__}: {exc}")
            log.warning("rule %s failed: %s: %s", rule.id, type(exc).__name__, exc)
            continue
        if hit is not None:
            score = min(1.0, max(0.0, float(hit[0])))
            results.append(RuleResult(rule.id, rule.category, score, hit[1], rule.hard))
            hard = hard or rule.hard
            survive *= 1.0 - weight * score
    return Evaluation(results, min(1.0, max(0.0, 1.0 - survive)), hard, errors)


def evaluate_batch(
    ctxs: Sequence[RuleContext],
    ruleset: RuleSet,
    organizer_ids: Sequence[str | None] | None = None,
) -> list[Evaluation]:
    """``evaluate`` over a batch; ``organizer_ids`` (same length) selects overrides per row."""
    if organizer_ids is None:
        return [evaluate(ctx, ruleset) for ctx in ctxs]
    if len(organizer_ids) != len(ctxs):
        raise ValueError(f"{len(ctxs)} contexts but {len(organizer_ids)} organizer ids")
    return [evaluate(ctx, ruleset, org) for ctx, org in zip(ctxs, organizer_ids, strict=True)]
