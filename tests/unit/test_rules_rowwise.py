"""Small batches are evaluated row by row (``processors/rules/rowwise.py``): the same hits,
scores, reasons, rule scores (to the bit), hard blocks and errors as by columns.

- simulated traffic through ``FeatureEngine``, with blocklists and organizer overrides, and
  the same rows perturbed towards every rule's thresholds and edge inputs;
- special values the scalar code could get wrong: NaN, infinities, -0.0, missing texts, bad
  and IPv6 addresses, divisions by zero and expressions that raise on some rows;
- the generated code names nothing but its arguments, its constants and the helpers.

Cost, measured on the shipped rules (this host, ``evaluate_rows`` against ``evaluate_columns``):
0.06 against 0.92 ms for one purchase, 0.17 against 1.0 ms for five, 0.92 against 1.6 ms for
thirty, even at ~64 rows; hence ``engine.ROW_BATCH`` (48).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.rules_bench import purchases_with_features, sample_blocklists
from models.simulator import SimConfig, simulate
from processors.rules import RuleBatch, RuleResult, engine, evaluate_batch, ruleset_from_dict
from processors.rules.engine import ROW_BATCH, evaluate_columns, evaluate_rows
from processors.rules.rowwise import HELPERS, clip_score
from tests.support.rule_cases import (
    CLEAN_FEATURES,
    CLEAN_PURCHASE,
    overridden_ruleset,
    perturbed,
)

pytestmark = [pytest.mark.unit, pytest.mark.slow]

CHUNK = 40  # rows per batch: both paths get the same batches


@pytest.fixture(scope="module")
def ruleset():
    return overridden_ruleset()


@pytest.fixture(scope="module")
def days():
    return purchases_with_features(simulate(SimConfig(seed=7, days=8, n_users=2_000)))


def assert_same(rows, blocked, ruleset) -> int:
    """Both paths over ``rows`` in batches of ``CHUNK``; the number of rule hits seen."""
    hits = 0
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        batch = RuleBatch.from_dicts([p for p, _ in chunk], [f for _, f in chunk], *blocked)
        by_rows = evaluate_rows(batch, ruleset)
        by_columns = evaluate_columns(batch, ruleset)
        assert by_rows.rule_score.tobytes() == by_columns.rule_score.tobytes(), start
        assert by_rows.hard_block.tolist() == by_columns.hard_block.tolist(), start
        for i in range(len(chunk)):
            assert by_rows.results[i] == by_columns.results[i], (start + i, chunk[i])
            assert by_rows.errors[i] == by_columns.errors[i], (start + i, chunk[i])
        hits += sum(map(len, by_rows.results))
    return hits


def test_same_outcomes_on_simulated_traffic(days, ruleset):
    assert len(days) > 1_500
    assert assert_same(days, sample_blocklists([p for p, _ in days]), ruleset) > 1_000


def test_same_outcomes_on_perturbed_purchases(days, ruleset):
    rows = perturbed(days[:2_000], seed=11)
    wallets, ips = sample_blocklists([p for p, _ in rows])
    assert assert_same(rows, (wallets, ips | {"10.0.0.1", "2001:DB8::1"}), ruleset) > 2_000


SPECIAL = (math.nan, math.inf, -math.inf, -0.0, 0.0, -1.0, 1e308, 5.0)
TEXTS = (None, "", "X", "x.mailinator.com", "not-an-ip", "2001:db8::1", "185.220.101.4",
         "10.0.0.1", "HeadlessChrome")  # fmt: skip
RULES = {  # expressions where numpy and Python arithmetic part ways, or that raise
    "divide": ("velocity_1h / amount_vs_avg > 1", "min(1.0, velocity_1h / 10)",
               "{velocity_1h / amount_vs_avg:.3g}"),
    "subtract": ("velocity_1h - amount_vs_avg >= 0", "ramp(velocity_1h, amount_vs_avg)",
                 "{velocity_1h - amount_vs_avg!r} {abs(velocity_1h)!r}"),
    "multiply": ("velocity_1h * amount_vs_avg != 1", "velocity_1h * amount_vs_avg",
                 "{max(velocity_1h, amount_vs_avg, -1)}"),
    "choose": ("(1 / velocity_1h if velocity_1h > 0 else 2) > 0.1",
               "-velocity_1h if missing(velocity_1h) else 0.5", "{fmt(velocity_1h, '.2f')}"),
    "short_circuit": ("velocity_1h > 0 and 10 / velocity_1h > 1 or missing(amount_vs_avg)",
                      "1", "{missing(velocity_1h)!r} {velocity_1h!s}"),
    "chain": ("0 <= velocity_1h < amount_vs_avg <= 1e300", "0.0 - velocity_1h", "{velocity_1h}"),
    "texts": ("lower(user_agent) + upper(email_domain) != 'X' and not missing(card_country)",
              "1.0", "{lower(user_agent)!r} {tld(email_domain)} {domain(card_country)!r}"),
    "lists": ("ip in lists.tor_exit or ip not in lists.non_public and valid_ip(ip) "
              "or card_country in ('X', '') or wallet in blocked.wallets", "0.7",
              "{canonical_ip(ip)!r}"),
    "ranges": ("in_cidr(ip, lists.non_public) or domain_in(email_domain, lists.disposable_domains)",
               "0.9", "{find_any(user_agent, ('Headless',))!r}"),
    "bad_text": ("lower(ip) == 'x' or contains_any(email_domain, ('x',))", "0.3", "ok"),
}  # fmt: skip


def special_ruleset():
    rules = {name: {"category": "behavioral", "weight": 0.5, "when": when, "score": score,
                    "reason": reason} for name, (when, score, reason) in RULES.items()}  # fmt: skip
    return ruleset_from_dict({"version": "special", "rules": rules})


def special_rows() -> list[tuple[dict, dict]]:
    rows = []
    for i, (a, b) in enumerate((a, b) for a in SPECIAL for b in SPECIAL):
        text = TEXTS[i % len(TEXTS)]
        purchase = {**CLEAN_PURCHASE, "ip": text, "user_agent": TEXTS[(i + 3) % len(TEXTS)],
                    "email_domain": TEXTS[(i + 5) % len(TEXTS)], "card_country": text}  # fmt: skip
        rows.append((purchase, {**CLEAN_FEATURES, "velocity_1h": a, "amount_vs_avg": b}))
    rows.append(({**CLEAN_PURCHASE, "ip": 12345}, CLEAN_FEATURES))  # not a text: lower() raises
    return rows


def test_same_outcomes_on_special_values():
    rows = special_rows()
    ruleset = special_ruleset()
    assert assert_same(rows, ({CLEAN_PURCHASE["wallet"]}, set()), ruleset) > 100
    errors = evaluate_rows(RuleBatch.from_dicts([p for p, _ in rows], [f for _, f in rows]),
                           ruleset).errors  # fmt: skip
    assert any(e.startswith("divide: FloatingPointError") for row in errors for e in row)
    assert any(e.startswith("bad_text: AttributeError") for row in errors for e in row)


def test_a_batch_takes_the_row_path_up_to_row_batch_with_the_same_answers(days, ruleset):
    rows = days[: ROW_BATCH + 1]
    small = RuleBatch.from_dicts([p for p, _ in rows[:ROW_BATCH]], [f for _, f in rows[:ROW_BATCH]])
    large = RuleBatch.from_dicts([p for p, _ in rows], [f for _, f in rows])
    for batch in (small, large):
        got, want = evaluate_batch(batch, ruleset), evaluate_columns(batch, ruleset)
        assert got.results == want.results
        assert got.rule_score.tobytes() == want.rule_score.tobytes()


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -0.0, 0.0, -3.0, 0.25, 1.0,
                                   1.5, 1, 0, True])  # fmt: skip
def test_scores_are_clipped_as_numpy_clips_them(value):
    want = np.clip(np.full(1, value, dtype=np.float64), 0.0, 1.0)
    want = np.where(np.isnan(want), 0.0, want)
    got = clip_score(value)
    assert type(got) is float
    assert np.float64(got).tobytes() == want[0].tobytes()


def test_generated_code_names_only_its_arguments_constants_and_helpers(ruleset):
    views = [ruleset, *ruleset.organizers.values()]
    functions = [view.whens for view in views]
    for view in views:
        for active in view.active:
            row = active.compiled.row
            functions += [row.when.run, row.score.run]
            functions += [part.value.run for part in row.parts if not isinstance(part, str)]
    for function in functions:
        code = function.__code__
        assert function.__globals__["__builtins__"] == {}
        assert set(code.co_varnames) <= {"f", "r", "b"}
        for name in code.co_names:
            assert name in HELPERS or name.startswith("_k") or name == "get", name


def test_a_subsets_rows_are_its_parents_rows_at_its_indices(days):
    rows = days[:10]
    batch = RuleBatch.from_dicts([p for p, _ in rows], [f for _, f in rows])
    picked = np.array([7, 2, 5])
    assert batch.subset(picked).rows() == [batch.rows()[i] for i in picked.tolist()]
    assert batch.subset(picked).subset(np.array([2])).rows() == [batch.rows()[5]]


def test_a_subsets_rows_at_indices_are_its_rows_there(days):
    rows = days[:10]
    batch = RuleBatch.from_dicts([p for p, _ in rows], [f for _, f in rows])
    sub = batch.subset(np.array([7, 2, 5]))
    assert batch.rows_at([3, 0]) == [batch.rows()[3], batch.rows()[0]]
    assert sub.rows_at([2, 0]) == [sub.rows()[2], sub.rows()[0]]
    assert sub.records_at([1]) == [rows[2][0]]


def test_a_rules_few_fired_rows_are_scored_and_explained_as_by_columns(days, ruleset,
                                                                       monkeypatch):  # fmt: skip
    """By columns, a rule's score and reason on up to ``engine.FEW_FIRED`` rows that fired are
    computed row by row (``engine._few``): the same results, rule scores (to the bit), hard
    blocks and errors as with every rule's fired rows by columns; a rule that defers or raises
    on one of them is done by columns. Simulated traffic in batches of 250 (organizer groups
    too), the same perturbed, and the special values in batches of 40."""
    few = []
    original = engine._few

    def counted(group, compiled, fired):
        hits = original(group, compiled, fired)
        few.append(hits is not None)
        return hits

    monkeypatch.setattr(engine, "_few", counted)
    special = special_rows()
    cases = [(days, 250, sample_blocklists([p for p, _ in days]), ruleset),
             (perturbed(days[:2_000], seed=11), 250, (set(), {"10.0.0.1"}), ruleset),
             (special, 40, ({CLEAN_PURCHASE["wallet"]}, set()), special_ruleset())]  # fmt: skip
    for rows, size, blocked, rules in cases:
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            batch = RuleBatch.from_dicts([p for p, _ in chunk], [f for _, f in chunk], *blocked)
            got = evaluate_columns(batch, rules)
            monkeypatch.setattr(engine, "FEW_FIRED", 0)
            want = evaluate_columns(batch, rules)
            monkeypatch.undo()
            monkeypatch.setattr(engine, "_few", counted)
            assert got.rule_score.tobytes() == want.rule_score.tobytes(), start
            assert got.hard_block.tolist() == want.hard_block.tolist(), start
            assert got.results == want.results, start
            assert got.errors == want.errors, start
    assert few.count(True) > 100 and few.count(False) > 5  # both ways taken


def test_results_made_by_columns_are_rule_results(days, ruleset):
    rows = days[:200]
    batch = RuleBatch.from_dicts([p for p, _ in rows], [f for _, f in rows])
    results = [r for row in evaluate_columns(batch, ruleset).results for r in row]
    assert results and all(type(r) is RuleResult for r in results)
    assert all(r == RuleResult(r.rule_id, r.category, r.score, r.reason, r.hard) for r in results)
