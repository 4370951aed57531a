"""Legacy (reference only): the per-row evaluation loop the expression engine replaced.

The rule score is a weighted noisy-OR: ``1 - prod(1 - weight_i * score_i)`` over the rules
that fired, clamped to [0, 1]. A rule that raises is isolated and listed in ``errors``.
Settings (enabled, weight, params, file order) come from a ``RuleSet`` view, so both engines
run the same rules file; the check functions are the legacy ones, looked up by rule id.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from processors.rules import RuleResult, RuleSet
from tests.support.legacy_rules.base import CATALOGUE, RuleContext


@dataclass(slots=True)
class Evaluation:
    results: list[RuleResult] = field(default_factory=list)
    rule_score: float = 0.0
    hard_block: bool = False
    errors: list[str] = field(default_factory=list)


def evaluate(ctx: RuleContext, view: RuleSet) -> Evaluation:
    """Run ``view``'s active rules (an organizer's view, or the base ruleset) over one row."""
    results: list[RuleResult] = []
    errors: list[str] = []
    survive, hard = 1.0, False
    for active in view.active:
        rule = CATALOGUE[active.rule.id]
        try:
            hit = rule.fn(ctx, active.setting.params)
        except Exception as exc:  # a faulty rule must not stop the others
            errors.append(f"{rule.id}: {type(exc).__name__}: {exc}")
            continue
        if hit is not None:
            score = min(1.0, max(0.0, float(hit[0])))
            results.append(RuleResult(rule.id, rule.category, score, hit[1], rule.hard))
            hard = hard or rule.hard
            survive *= 1.0 - active.setting.weight * score
    return Evaluation(results, min(1.0, max(0.0, 1.0 - survive)), hard, errors)
