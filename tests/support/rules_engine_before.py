"""The rules engine's column path as it was before the native program (main at 810f2fd),
frozen ONLY as the reference ``tests/unit/test_rules_program.py`` compares the engine with:
each rule one vectorised pass over the batch (its compiled column nodes), organizers' rows
grouped by view, reasons rendered by columns, a rule that raises evaluated again row by row.
(Its row-by-row path for small batches was tested equal to this one, and its ``_few`` equal
to rendering by columns.) Do not use outside tests.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import repeat
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
    """One rule over one group of rows: the rows that fired (ascending, as an index array and
    as a list), their scores and reasons, and the rows' errors; ``uniform``: every row that
    fired has the same score and reason (a constant score and a reason without fields)."""

    fired: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    rows: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)
    uniform: bool = False  # one score and one reason on every row that fired


def evaluate_columns(batch: RuleBatch, ruleset: RuleSet) -> BatchEvaluation:
    """Each rule over the whole batch, once per compiled form in use (organizers that
    override a rule's parameters get their own pass over their rows; the rest share one)."""
    out = BatchEvaluation.empty(batch.n)
    # each row's noisy-OR product as Python floats (the same IEEE doubles as float64): a rule
    # multiplies in the rows that fired only, in its loop over them
    survive, hard = [1.0] * batch.n, np.zeros(batch.n, dtype=bool)
    # (it read the rules' text columns in one pass here first, ``batch.read``: no answer
    # depends on it, each column is read on first use as well)
    with np.errstate(divide="raise", invalid="raise", over="ignore"):
        for active, rows, weight in _passes(ruleset, _views(batch, ruleset)):
            _apply(batch, active, rows, weight, out, survive, hard)
    out.rule_score, out.hard_block = np.clip(1.0 - np.array(survive), 0.0, 1.0), hard
    return out


Views = RuleSet | list[tuple[RuleSet, np.ndarray]]


def _views(batch: RuleBatch, ruleset: RuleSet) -> Views:
    """The one view every row has, or (view, row indices) per organizer view present."""
    if not ruleset.organizers:
        return ruleset
    organizers = batch.field("organizer_id").tolist()
    if ruleset.organizers.keys().isdisjoint(organizers):  # no row has overrides: one set test
        return ruleset  # instead of a view looked up per row (~0.4 µs a row of 500)
    keys = [ruleset.for_organizer(org).organizer_id for org in organizers]
    groups: dict[str | None, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    if len(groups) == 1:
        return ruleset.for_organizer(keys[0]) if keys else ruleset
    return [(ruleset.for_organizer(k), np.asarray(r, dtype=np.intp)) for k, r in groups.items()]


Variant = tuple[ActiveRule, "np.ndarray | None", "float | np.ndarray"]


def _passes(ruleset: RuleSet, views: Views) -> Iterator[Variant]:
    """Every rule's passes in file order (each row's noisy-OR multiplies in that order)."""
    if isinstance(views, RuleSet):  # one view for every row: its active rules
        for active in views.active:
            yield active, None, active.setting.weight
        return
    for rule_id in ruleset.rules:
        yield from _variants(rule_id, views)


def _variants(rule_id: str, views: list[tuple[RuleSet, np.ndarray]]) -> list[Variant]:
    """(active rule, its rows, weight or per-row weights) per compiled form of ``rule_id``
    among the views; views where it is not active are left out."""
    forms: dict[int, list[tuple[ActiveRule, np.ndarray]]] = {}
    for view, rows in views:
        active = view.active_by_id.get(rule_id)
        if active is not None:
            forms.setdefault(id(active.compiled), []).append((active, rows))
    out: list[Variant] = []
    for parts in forms.values():
        if len(parts) == 1:
            active, rows = parts[0]
            out.append((active, rows, active.setting.weight))
        else:
            rows = np.concatenate([r for _, r in parts])
            weights = np.concatenate([np.full(len(r), a.setting.weight) for a, r in parts])
            out.append((parts[0][0], rows, weights))
    return out


def _apply(batch: RuleBatch, active: ActiveRule, rows: np.ndarray | None,
           weight: float | np.ndarray, out: BatchEvaluation, survive: list[float],
           hard: np.ndarray) -> None:  # fmt: skip
    """One rule over ``rows`` of the batch: results, errors, the noisy-OR and hard blocks.
    A row where the rule does not fire is left as it is: its factor would be
    ``1.0 - weight * 0.0``, exactly 1.0."""
    group = batch if rows is None else batch.subset(rows)
    hits = _run_rule(group, active)
    if hits is None:
        return
    targets: Sequence[int] = range(batch.n) if rows is None else rows.tolist()
    rule = active.rule
    for i, error in hits.errors.items():
        out.errors[targets[i]].append(f"{rule.id}: {error}")
    if not hits.rows:
        return
    results = out.results
    if hits.uniform:  # one result for every row that fired: made once, shared (a tuple)
        one = RuleResult(rule.id, rule.category, hits.scores[0], hits.reasons[0], rule.hard)
        made: Iterator[RuleResult] = repeat(one)
    else:
        made = _results(rule.id, rule.category, hits.scores, hits.reasons, rule.hard)
    if rows is None and not isinstance(weight, np.ndarray):  # the whole batch, one weight
        for i, result, score in zip(hits.rows, made, hits.scores, strict=False):
            results[i].append(result)
            survive[i] *= 1.0 - weight * score
    else:  # an organizer group's rows, and its per-row weights or its rule's one weight
        weights = weight[hits.fired].tolist() if isinstance(weight, np.ndarray) else repeat(weight)
        for i, result, w, score in zip(hits.rows, made, weights, hits.scores, strict=False):
            t = targets[i]
            results[t].append(result)
            survive[t] *= 1.0 - w * score
    if rule.hard:
        hard[hits.fired if rows is None else rows[hits.fired]] = True


def _results(rule_id: str, category: str, scores: list[float], reasons: list[str],
             hard: bool) -> Iterator[RuleResult]:  # fmt: skip
    """One rule's results on the rows that fired: ``RuleResult(rule_id, category, score,
    reason, hard)`` each, made by ``tuple.__new__`` called from C (``map``), not by the named
    tuple's Python ``__new__`` (177 results: 40 against 87 µs)."""
    fields = zip(repeat(rule_id), repeat(category), scores, reasons, repeat(hard), strict=False)
    return map(tuple.__new__, repeat(RuleResult), fields)


def _run_rule(group: RuleBatch, active: ActiveRule) -> _Hits | None:
    """``when`` and ``score`` over the group, reasons for the rows that fired; None when no
    row fired and none raised."""
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


def _evaluate(group: RuleBatch, compiled: CompiledRule) -> _Hits | None:
    """``when`` over the group; ``score`` and ``reason`` over the rows that fired only (row
    by row when they are few and the score is computed, ``_few``; not at all when they are
    constants)."""
    fired = _column(compiled.when.run(group), group.n, np.bool_).nonzero()[0]
    if not len(fired):
        return None
    rows = fired.tolist()
    score, literal = compiled.constant_score, compiled.reason.literal
    if score is not None and literal is not None:  # 7 of the 76 shipped rules
        return _Hits(fired, rows, [score] * len(rows), [literal] * len(rows), uniform=True)
    target = group if len(rows) == group.n else group.subset(fired)
    if score is None:
        raw = np.clip(_column(compiled.score.run(target), target.n, np.float64), 0.0, 1.0)
        scores = np.where(np.isnan(raw), 0.0, raw).tolist()
    else:
        scores = [score] * len(rows)
    return _Hits(fired, rows, scores, compiled.reason.render(target))


def _row_by_row(group: RuleBatch, compiled: CompiledRule) -> _Hits:
    """The rule on each row alone: a row that raises gets an error and does not fire."""
    hits = _Hits()
    for i in range(group.n):
        try:
            one = _evaluate(group.subset(np.array([i])), compiled)
        except Exception as exc:
            hits.errors[i] = f"{type(exc).__name__}: {exc}"
            continue
        if one is not None:
            hits.rows.append(i)
            hits.scores.append(one.scores[0])
            hits.reasons.append(one.reasons[0])
    hits.fired = np.asarray(hits.rows, dtype=np.intp)
    return hits
