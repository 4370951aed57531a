"""Evaluating a ruleset over a batch of purchases, of any size: every active rule's ``when``
and ``score`` over every row in one native call (``program``), reasons rendered only for the
(row, rule) pairs that fired.

    evaluation = evaluate_batch(RuleBatch(purchases, X, wallets, ips), ruleset)
    evaluation.rule_score[i], evaluation.hard_block[i], evaluation.results[i]
    evaluation.row(i) -> Evaluation(results, rule_score, hard_block, errors)

Rows are grouped by their organizer's view of the ruleset (``for_organizer``), so overrides
apply per row: each view's program runs over its rows. The rule score is a weighted noisy-OR,
``1 - prod(1 - weight_i * score_i)`` over the rules that fired, clamped to [0, 1]; scores are
clamped to [0, 1] too. A (row, rule) the program defers (where numpy could raise or differ) is
evaluated by columns on that row alone (the rule's compiled column nodes), which gives its
result, or its error (logged, in ``errors``); a rule whose reasons raise is evaluated again
row by row the same way. The other rows and rules are unaffected.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np

from processors.rules.base import RuleResult
from processors.rules.batch import RuleBatch
from processors.rules.definitions import CompiledRule
from processors.rules.ruleset import ActiveRule, RuleSet
from processors.rules.template import Template

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
    """One rule over some rows: the rows that fired (ascending), their scores and reasons,
    and the rows' errors; ``uniform``: every row that fired has the same score and reason (a
    constant score and a reason without fields)."""

    rows: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)
    uniform: bool = False  # one score and one reason on every row that fired


def evaluate_batch(batch: RuleBatch, ruleset: RuleSet) -> BatchEvaluation:
    """The ruleset (each row seen through its organizer's overrides) over ``batch``."""
    out = BatchEvaluation.empty(batch.n)
    # each row's noisy-OR product as Python floats (the same IEEE doubles as float64): a rule
    # multiplies in the rows that fired only, in file order
    survive, hard = [1.0] * batch.n, np.zeros(batch.n, dtype=bool)
    with np.errstate(divide="raise", invalid="raise", over="ignore"):
        views = _views(batch, ruleset)
        for view, rows in [(views, None)] if isinstance(views, RuleSet) else views:
            _apply_view(batch, view, rows, out, survive, hard)
    out.rule_score, out.hard_block = (1.0 - np.array(survive)).clip(0.0, 1.0), hard
    return out


def _apply_view(batch: RuleBatch, view: RuleSet, rows: list[int] | None, out: BatchEvaluation,
                survive: list[float], hard: np.ndarray) -> None:  # fmt: skip
    """``view``'s program over ``rows`` (None: all), then each rule's hits in file order:
    results, errors, the noisy-OR and hard blocks. A row where a rule does not fire is left
    as it is: its factor would be ``1.0 - weight * 0.0``, exactly 1.0."""
    hit_rows, scores, spans, values, unexplained, deferred = view.program.run(batch, rows)
    actives, results = view.active, out.results
    for k, start, end, offset in spans:
        active = actives[k]
        rule, weight, compiled = active.rule, active.setting.weight, active.compiled
        rows_k, scores_k = hit_rows[start:end], scores[start:end]
        if k in deferred:
            hits = _deferred(batch, active, rows_k, scores_k, out.errors)
        elif compiled.reason.literal is not None and compiled.constant_score is not None:
            # one result for every row that fired: made once, shared (a tuple)
            one = RuleResult(rule.id, rule.category, scores_k[0], compiled.reason.literal,
                             rule.hard)  # fmt: skip
            factor = 1.0 - weight * scores_k[0]
            for i in rows_k:
                results[i].append(one)
                survive[i] *= factor
            if rule.hard:
                hard[rows_k] = True
            continue
        else:
            width = len(compiled.code.fields)
            shown = None if k in unexplained else values[offset : offset + (end - start) * width]
            hits = _fired(batch, active, rows_k, scores_k, shown, out.errors)
        made = _results(rule.id, rule.category, hits.scores, hits.reasons, rule.hard)
        for i, result, score in zip(hits.rows, made, hits.scores, strict=False):
            results[i].append(result)
            survive[i] *= 1.0 - weight * score
        if rule.hard and hits.rows:
            hard[hits.rows] = True


def _deferred(batch: RuleBatch, active: ActiveRule, rows: list[int], scores: list[float],
              errors: list[list[str]]) -> _Hits:  # fmt: skip
    """A rule's hits where the program deferred some rows (score NaN): those evaluated by
    columns one by one, reasons rendered for the others."""
    kept = [(i, s) for i, s in zip(rows, scores, strict=True) if s == s]
    hits = _fired(batch, active, [i for i, _ in kept], [s for _, s in kept], None, errors)
    done = dict(zip(hits.rows, zip(hits.scores, hits.reasons, strict=True), strict=True))
    for i, score in zip(rows, scores, strict=True):
        if score != score:
            one = _one_row(batch, i, active, errors[i])
            if one is not None:
                done[i] = one
    ordered = sorted(done)
    return _Hits(ordered, [done[i][0] for i in ordered], [done[i][1] for i in ordered])


def _fired(batch: RuleBatch, active: ActiveRule, rows: list[int], scores: list[float],
           shown: list[float] | None, errors: list[list[str]]) -> _Hits:  # fmt: skip
    """A rule's hits on ``rows`` (where it fired) with their ``scores``; ``shown``: the
    program's values of its reason's fields there, if it has them."""
    compiled = active.compiled
    if not rows:
        return _Hits()
    literal = compiled.reason.literal
    if literal is not None and compiled.constant_score is not None:
        return _Hits(rows, scores, [literal] * len(rows), uniform=True)
    reasons = _reasons(batch, compiled, rows, shown)
    if reasons is None:  # the reason raises on some row: each row by columns
        hits = _run_rule(batch.subset(np.array(rows, dtype=np.intp)), active) or _Hits()
        for j, error in hits.errors.items():
            errors[rows[j]].append(f"{active.rule.id}: {error}")
        return _Hits([rows[j] for j in hits.rows], hits.scores, hits.reasons)
    return _Hits(rows, scores, reasons)


# Up to this many rows that fired, a reason with a text field is rendered row by row with its
# row functions (``rowwise``, same texts; the features they read from the program) instead of
# by numpy calls on the fired rows' subset, which cost ~20-35 µs however few the rows.
FEW_FIRED = 6


def _reasons(batch: RuleBatch, compiled: CompiledRule, rows: list[int],
             shown: list[float] | None) -> list[str] | None:  # fmt: skip
    """The rule's reason on each of ``rows`` (rows where it fired): from the program's values
    (``shown``: its fields, or the features its row functions read), else by columns; None
    when it raises."""
    literal = compiled.reason.literal
    if literal is not None:
        return [literal] * len(rows)
    code = compiled.code
    if shown is not None and (code.features is None or len(rows) <= FEW_FIRED):
        try:
            if code.features is None:
                return _shown(compiled.reason, shown, len(code.fields))
            return _row_reasons(batch, compiled, rows, shown, code.features)
        except Exception:  # noqa: S110  (Defer, or it raises on a row: by columns, below)
            pass
    target = batch if len(rows) == batch.n else batch.subset(np.array(rows, dtype=np.intp))
    try:
        return compiled.reason.render(target)
    except Exception:  # noqa: BLE001  (each row by columns: its own error)
        return None


def _row_reasons(batch: RuleBatch, compiled: CompiledRule, rows: list[int],
                 shown: list[float], features: tuple[int, ...]) -> list[str]:  # fmt: skip
    """The reason on each row by its row functions, given the features they read (``shown``,
    ``len(features)`` a row) as the row (a mapping from feature index to value)."""
    reason, blocked, records, width = compiled.row.reason, batch.blocked, batch.records, len(
        features)
    return [reason(dict(zip(features, shown[j * width : (j + 1) * width], strict=True)),
                   records[i], blocked) for j, i in enumerate(rows)]  # fmt: skip


def _shown(reason: Template, values: list[float], width: int) -> list[str]:
    """A reason's texts from its fields' values (``width`` a row, row after row), each
    formatted as ``Template.render`` formats a column's (booleans as bools)."""
    columns: list[Iterable[Any]] = [values[k::width] for k in range(width)] if width > 1 else [
        values]
    for k in reason.booleans:
        columns[k] = map(bool, columns[k])
    if reason.pattern is not None:  # each row in one call
        return list(map(reason.pattern.format, *columns))
    texts: list[Iterable[str]] = []
    fields = iter(columns)
    for part in reason.rendered:
        if isinstance(part, str):
            texts.append(repeat(part))
            continue
        field = next(fields)
        if part.conversion == "r":
            field = map(repr, field)
        elif part.conversion == "s":
            field = map(str, field)
        texts.append(map(format, field, repeat(part.spec)))
    return list(map("".join, zip(*texts, strict=False)))  # the repeats are endless


def _one_row(batch: RuleBatch, i: int, active: ActiveRule,
             errors: list[str]) -> tuple[float, str] | None:  # fmt: skip
    """Rule ``active`` on row ``i`` by columns: (score, reason) when it fires; its error, if
    any, appended to ``errors``."""
    hits = _run_rule(batch.subset(np.array([i])), active)
    if hits is None:
        return None
    errors.extend(f"{active.rule.id}: {error}" for error in hits.errors.values())
    if not hits.rows:
        return None
    return hits.scores[0], hits.reasons[0]


Views = RuleSet | list[tuple[RuleSet, list[int]]]


def _views(batch: RuleBatch, ruleset: RuleSet) -> Views:
    """The one view every row has, or (view, row indices) per organizer view present."""
    if not ruleset.organizers:
        return ruleset
    organizers = batch.values("organizer_id")
    if ruleset.organizers.keys().isdisjoint(organizers):  # no row has overrides: one set test
        return ruleset  # instead of a view looked up per row (~0.4 µs a row of 500)
    keys = [ruleset.for_organizer(org).organizer_id for org in organizers]
    groups: dict[str | None, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    if len(groups) == 1:
        return ruleset.for_organizer(keys[0]) if keys else ruleset
    return [(ruleset.for_organizer(k), rows) for k, rows in groups.items()]


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
    """``when`` over the group by columns; ``score`` and ``reason`` over the rows that fired
    only (not at all when they are constants)."""
    fired = _column(compiled.when.run(group), group.n, np.bool_).nonzero()[0]
    if not len(fired):
        return None
    rows = fired.tolist()
    score, literal = compiled.constant_score, compiled.reason.literal
    if score is not None and literal is not None:
        return _Hits(rows, [score] * len(rows), [literal] * len(rows), uniform=True)
    target = group if len(rows) == group.n else group.subset(fired)
    if score is None:
        raw = np.clip(_column(compiled.score.run(target), target.n, np.float64), 0.0, 1.0)
        scores = np.where(np.isnan(raw), 0.0, raw).tolist()
    else:
        scores = [score] * len(rows)
    return _Hits(rows, scores, compiled.reason.render(target))


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
    return hits
