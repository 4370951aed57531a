"""A rule's reason on the few rows where it fired is rendered row by row
(``processors/rules/rowwise.py``, up to ``engine.FEW_FIRED`` rows): the same texts, and the
same hits, rule scores (to the bit), hard blocks and errors as rendered by columns, over
simulated traffic (with organizer overrides), the same perturbed, and special values (NaN,
infinities, -0.0, missing texts, bad IPs, failing expressions); the generated code names
nothing but its arguments, its constants and the helpers.
"""

from __future__ import annotations

import pytest

from models.rules_bench import purchases_with_features, sample_blocklists
from models.simulator import SimConfig, simulate
from processors.rules import RuleBatch, RuleResult, engine, evaluate_batch
from processors.rules.rowwise import HELPERS
from tests.support.rule_cases import (
    CLEAN_PURCHASE,
    overridden_ruleset,
    perturbed,
    special_rows,
    special_ruleset,
)

pytestmark = [pytest.mark.unit, pytest.mark.slow]


@pytest.fixture(scope="module")
def ruleset():
    return overridden_ruleset()


@pytest.fixture(scope="module")
def days():
    return purchases_with_features(simulate(SimConfig(seed=7, days=8, n_users=2_000)))


def test_generated_code_names_only_its_arguments_constants_and_helpers(ruleset):
    views = [ruleset, *ruleset.organizers.values()]
    functions = []
    for view in views:
        for active in view.active:
            row = active.compiled.row
            functions += [part.value.run for part in row.parts if not isinstance(part, str)]
    assert len(functions) > 50
    for function in functions:
        code = function.__code__
        assert function.__globals__["__builtins__"] == {}
        assert set(code.co_varnames) <= {"f", "r", "b"}
        for name in code.co_names:
            assert name in HELPERS or name.startswith("_k") or name == "get", name


def test_a_rules_few_fired_rows_are_explained_as_by_columns(days, ruleset, monkeypatch):
    """Up to ``engine.FEW_FIRED`` rows that fired, a reason the program does not render (a
    text field) is rendered row by row (``engine._reasons``): the same results, rule scores
    (to the bit), hard blocks and errors as with every such reason rendered by columns; a
    rule that defers or raises on one of them is rendered by columns. Simulated traffic in
    batches of 250 (organizer groups too), the same perturbed, and the special values in
    batches of 40, with every such reason row by row against every one by columns."""
    row_by_row = []
    original = engine._reasons

    def counted(batch, compiled, rows, shown):
        rendered = compiled.reason.literal is not None or shown is not None
        row_by_row.append(not rendered and len(rows) <= engine.FEW_FIRED)
        return original(batch, compiled, rows, shown)

    monkeypatch.setattr(engine, "_reasons", counted)
    special = special_rows()
    cases = [(days, 250, sample_blocklists([p for p, _ in days]), ruleset),
             (perturbed(days[:2_000], seed=11), 250, (set(), {"10.0.0.1"}), ruleset),
             (special, 40, ({CLEAN_PURCHASE["wallet"]}, set()), special_ruleset())]  # fmt: skip
    for rows, size, blocked, rules in cases:
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            batch = RuleBatch.from_dicts([p for p, _ in chunk], [f for _, f in chunk], *blocked)
            with monkeypatch.context() as m:
                m.setattr(engine, "FEW_FIRED", 10**6)
                got = evaluate_batch(batch, rules)
            with monkeypatch.context() as m:
                m.setattr(engine, "FEW_FIRED", 0)
                want = evaluate_batch(batch, rules)
            assert got.rule_score.tobytes() == want.rule_score.tobytes(), start
            assert got.hard_block.tolist() == want.hard_block.tolist(), start
            assert got.results == want.results, start
            assert got.errors == want.errors, start
    assert row_by_row.count(True) >= 5 and row_by_row.count(False) > 100  # both ways taken


def test_results_are_rule_results(days, ruleset):
    rows = days[:200]
    batch = RuleBatch.from_dicts([p for p, _ in rows], [f for _, f in rows])
    results = [r for row in evaluate_batch(batch, ruleset).results for r in row]
    assert results and all(type(r) is RuleResult for r in results)
    assert all(r == RuleResult(r.rule_id, r.category, r.score, r.reason, r.hard) for r in results)
