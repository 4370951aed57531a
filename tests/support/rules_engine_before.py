"""The rules engine's column path as it was before the native program (main at 810f2fd),
kept ONLY as the reference ``tests/unit/test_rules_program.py`` compares the engine with:
each rule one vectorised pass over the batch (its compiled column nodes), organizers' rows
grouped by view, reasons rendered by columns, a rule that raises evaluated again row by row.
(Its row-by-row path for small batches was tested equal to this one, and its ``_few`` equal
to rendering by columns.) What a rule does on a group of rows (``_run_rule``: when, score and
reason by columns, row by row where it raises) is the engine's own, which it still uses for
the (row, rule) pairs its program defers; this module is the driver that ran it over a whole
batch. Do not use outside tests.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import repeat

import numpy as np

from processors.rules import engine
from processors.rules.base import RuleResult
from processors.rules.batch import RuleBatch
from processors.rules.engine import BatchEvaluation, _results, _run_rule
from processors.rules.ruleset import ActiveRule, RuleSet


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
    """The engine's views (``engine._views``), each group's rows as an index array."""
    views = engine._views(batch, ruleset)
    if isinstance(views, RuleSet):
        return views
    return [(view, np.asarray(rows, dtype=np.intp)) for view, rows in views]


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
    fired = np.asarray(hits.rows, dtype=np.intp)
    if rows is None and not isinstance(weight, np.ndarray):  # the whole batch, one weight
        for i, result, score in zip(hits.rows, made, hits.scores, strict=False):
            results[i].append(result)
            survive[i] *= 1.0 - weight * score
    else:  # an organizer group's rows, and its per-row weights or its rule's one weight
        weights = weight[fired].tolist() if isinstance(weight, np.ndarray) else repeat(weight)
        for i, result, w, score in zip(hits.rows, made, weights, hits.scores, strict=False):
            t = targets[i]
            results[t].append(result)
            survive[t] *= 1.0 - w * score
    if rule.hard:
        hard[fired if rows is None else rows[fired]] = True
