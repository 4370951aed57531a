"""Evaluating a ruleset over a batch of purchases, each rule one vectorised pass.

    evaluation = evaluate_batch(RuleBatch(purchases, X, wallets, ips), ruleset)
    evaluation.rule_score[i], evaluation.hard_block[i], evaluation.results[i]
    evaluation.row(i) -> Evaluation(results, rule_score, hard_block, errors)

Rows are grouped by their organizer's view of the ruleset (``for_organizer``), so overrides
apply per row. The rule score is a weighted noisy-OR, ``1 - prod(1 - weight_i * score_i)``
over the rules that fired, clamped to [0, 1]; scores are clamped to [0, 1] too. Reasons are
rendered only for the rows where a rule fired. A rule that raises on the batch is evaluated
again row by row: the rows where it raises get an error (logged, in ``errors``), the other
rows and the other rules are unaffected.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from processors.rules.base import RuleResult
from processors.rules.batch import RuleBatch
from processors.rules.definitions import CompiledRule
from processors.rules.ruleset import ActiveRule, RuleSet

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Evaluation:
    """One purchase's rule outcome."""

    results: list[RuleResult] = field(default_factory=list)
    rule_score: float = 0.0
    hard_block: bool = False
    errors: list[str] = field(default_factory=list)


@dataclass(slots=True)
class BatchEvaluation:
    """Per row: ``rule_score`` (float64), ``hard_block`` (bool), the fired rules' ``results``
    in file order, and ``errors`` ("rule_id: ErrorType: message")."""

    rule_score: np.ndarray
    hard_block: np.ndarray
    results: list[list[RuleResult]]
    errors: list[list[str]]

    @classmethod
    def empty(cls, n: int) -> BatchEvaluation:
        return cls(np.zeros(n), np.zeros(n, dtype=bool), [[] for _ in range(n)],
                   [[] for _ in range(n)])  # fmt: skip

    def __len__(self) -> int:
        return len(self.results)

    def row(self, i: int) -> Evaluation:
        return Evaluation(self.results[i], float(self.rule_score[i]), bool(self.hard_block[i]),
                          self.errors[i])  # fmt: skip


@dataclass(slots=True)
class _Hits:
    """One rule over one group of rows: the rows that fired (ascending), their scores (the
    group's column, 0 where it did not fire) and reasons, and the rows' errors."""

    fired: list[int] = field(default_factory=list)
    score: np.ndarray | None = None
    reasons: list[str] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)


def evaluate_batch(batch: RuleBatch, ruleset: RuleSet) -> BatchEvaluation:
    """The ruleset (each row seen through its organizer's overrides) over ``batch``."""
    out = BatchEvaluation.empty(batch.n)
    with np.errstate(divide="raise", invalid="raise", over="ignore"):
        for view, rows in _views(batch, ruleset):
            group = batch if rows is None else batch.subset(rows)
            targets = range(batch.n) if rows is None else rows.tolist()
            score, hard = _evaluate_group(group, view, out, targets)
            if rows is None:
                out.rule_score, out.hard_block = score, hard
            else:
                out.rule_score[rows], out.hard_block[rows] = score, hard
    return out


def _views(batch: RuleBatch, ruleset: RuleSet) -> list[tuple[RuleSet, np.ndarray | None]]:
    """(view, row indices) per organizer view present; rows None when one view has all."""
    if not ruleset.organizers:
        return [(ruleset, None)]
    keys = [ruleset.for_organizer(org).organizer_id for org in batch.field("organizer_id")]
    groups: dict[str | None, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    if len(groups) == 1:
        return [(ruleset.for_organizer(keys[0]) if keys else ruleset, None)]
    return [(ruleset.for_organizer(k), np.asarray(r, dtype=np.intp)) for k, r in groups.items()]


def _evaluate_group(group: RuleBatch, view: RuleSet, out: BatchEvaluation,
                    targets: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Every active rule of ``view`` over ``group`` (row i of the group is row targets[i] of
    ``out``); fills ``out``'s per-row lists and gives the group's (rule score, hard block)."""
    survive, hard = np.ones(group.n), np.zeros(group.n, dtype=bool)
    for active in view.active:
        hits = _run_rule(group, active)
        rule = active.rule
        for i, error in hits.errors.items():
            out.errors[targets[i]].append(f"{rule.id}: {error}")
        if not hits.fired:
            continue
        scores = hits.score[hits.fired].tolist()
        for i, score, reason in zip(hits.fired, scores, hits.reasons, strict=True):
            out.results[targets[i]].append(
                RuleResult(rule.id, rule.category, score, reason, rule.hard))
        survive *= 1.0 - active.setting.weight * hits.score
        if rule.hard:
            hard[hits.fired] = True
    return np.clip(1.0 - survive, 0.0, 1.0), hard


def _run_rule(group: RuleBatch, active: ActiveRule) -> _Hits:
    """``when`` and ``score`` over the group, reasons for the rows that fired."""
    try:
        return _evaluate(group, active.compiled)
    except Exception as exc:  # a faulty rule must not stop the others, nor the other rows
        log.warning("rule %s failed on a batch of %d, evaluating it row by row: %s: %s",
                    active.rule.id, group.n, type(exc).__name__, exc)  # fmt: skip
        return _row_by_row(group, active.compiled)


def _column(value: Any, n: int, dtype: type) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value if value.shape == (n,) and value.dtype == dtype else np.broadcast_to(
            np.asarray(value, dtype=dtype), (n,))  # fmt: skip
    return np.full(n, value, dtype=dtype)


def _evaluate(group: RuleBatch, compiled: CompiledRule) -> _Hits:
    """``when`` over the group; ``score`` and ``reason`` over the rows that fired only."""
    fired = np.flatnonzero(_column(compiled.when.run(group), group.n, np.bool_))
    if not len(fired):
        return _Hits()
    target = group if len(fired) == group.n else group.subset(fired)
    raw = np.clip(_column(compiled.score.run(target), target.n, np.float64), 0.0, 1.0)
    score = np.zeros(group.n)
    score[fired] = np.where(np.isnan(raw), 0.0, raw)
    return _Hits(fired.tolist(), score, compiled.reason.render(target))


def _row_by_row(group: RuleBatch, compiled: CompiledRule) -> _Hits:
    """The rule on each row alone: a row that raises gets an error and does not fire."""
    hits = _Hits(score=np.zeros(group.n))
    for i in range(group.n):
        try:
            one = _evaluate(group.subset(np.array([i])), compiled)
        except Exception as exc:
            hits.errors[i] = f"{type(exc).__name__}: {exc}"
            continue
        if one.fired:
            hits.fired.append(i)
            hits.score[i] = one.score[0]
            hits.reasons.append(one.reasons[0])
    return hits
