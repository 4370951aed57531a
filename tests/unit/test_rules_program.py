"""The rules' native program (``processors/rules/program.py``, ``RuleProgram`` in
``processors/native/src/rules.rs``) gives the same hits, scores, reasons, rule scores (to the
bit), hard blocks and errors as the column engine it replaced (frozen in
``tests/support/rules_engine_before.py``):

- simulated traffic with blocklists and organizer overrides, in batches of 0, 1, 7, 40 and
  500, and the same perturbed towards every rule's thresholds and edge inputs;
- every operator and function of the language, on special values (NaN, infinities, -0.0,
  -1 as missing, missing and odd texts, bad and IPv6 addresses, a value that is not a text,
  divisions by zero), one row at a time and in batches;
- per-organizer overrides (parameters, weights, disabled rules).
"""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest

from models.rules_bench import purchases_with_features, sample_blocklists
from models.simulator import SimConfig, simulate
from processors.compute import FEATURE_NAMES
from processors.rules import RuleBatch, evaluate_batch, ruleset_from_dict
from processors.rules.program import Program, RuleCode
from tests.support.rule_cases import (
    CLEAN_FEATURES,
    CLEAN_PURCHASE,
    overridden_ruleset,
    perturbed,
    special_rows,
    special_ruleset,
)
from tests.support.rules_engine_before import evaluate_columns

pytestmark = [pytest.mark.unit]


@pytest.fixture(scope="module")
def ruleset():
    return overridden_ruleset()


@pytest.fixture(scope="module")
def days():
    return purchases_with_features(simulate(SimConfig(seed=5, days=4, n_users=1_500)))


def assert_same(rows, blocked, ruleset, size) -> int:
    """The engine and the reference over ``rows`` in batches of ``size``; the hits seen."""
    hits = 0
    for start in range(0, max(len(rows), 1), max(size, 1)):
        chunk = rows[start : start + size]
        purchases, features = [p for p, _ in chunk], [f for _, f in chunk]
        got = evaluate_batch(RuleBatch.from_dicts(purchases, features, *blocked), ruleset)
        want = evaluate_columns(RuleBatch.from_dicts(purchases, features, *blocked), ruleset)
        assert got.rule_score.tobytes() == want.rule_score.tobytes(), start
        assert got.hard_block.tolist() == want.hard_block.tolist(), start
        for i in range(len(chunk)):
            assert got.results[i] == want.results[i], (start + i, chunk[i])
            assert got.errors[i] == want.errors[i], (start + i, chunk[i])
        hits += sum(map(len, got.results))
    return hits


@pytest.mark.slow
@pytest.mark.parametrize("size", [1, 7, 40, 500])
def test_same_outcomes_on_simulated_traffic(days, ruleset, size):
    rows = days if size > 1 else days[:300]
    assert assert_same(rows, sample_blocklists([p for p, _ in days]), ruleset, size) > 200


@pytest.mark.slow
@pytest.mark.parametrize("size", [1, 40, 500])
def test_same_outcomes_on_perturbed_purchases(days, ruleset, size):
    rows = perturbed(days[:1_500], seed=11)[: 1_500 if size > 1 else 300]
    wallets, ips = sample_blocklists([p for p, _ in rows])
    blocked = (wallets, ips | {"10.0.0.1", "2001:DB8::1"})
    assert assert_same(rows, blocked, ruleset, size) > 300


def test_an_empty_batch_has_no_results(ruleset):
    got = evaluate_batch(RuleBatch([], np.zeros((0, len(FEATURE_NAMES)))), ruleset)
    assert len(got) == 0 and got.rule_score.shape == (0,) and got.hard_block.shape == (0,)
    assert assert_same([], (set(), set()), ruleset, 0) == 0


@pytest.mark.parametrize("size", [1, 3, 40, 500])
def test_same_outcomes_on_special_values(size):
    rows = special_rows()
    ruleset = special_ruleset()
    assert assert_same(rows, ({CLEAN_PURCHASE["wallet"]}, set()), ruleset, size) > 100
    errors = evaluate_batch(RuleBatch.from_dicts([p for p, _ in rows], [f for _, f in rows]),
                            ruleset).errors  # fmt: skip
    assert any(e.startswith("divide: FloatingPointError") for row in errors for e in row)
    assert any(e.startswith("bad_text: AttributeError") for row in errors for e in row)


# Every operator and function of the language, over two features and the texts below.
LANGUAGE = {
    "arithmetic": ("x + y > 1 or x - y < -1 or x * y >= 2 or x / 4 <= -0.5", "x * y - y / 2"),
    "division": ("y / x != 3", "x / y"),
    "signs": ("-x < +y", "-x"),
    "comparisons": ("x == y or x != 0 and y == 0 or 0 < x <= y < 10", "1 - y"),
    "chain_of_texts": ("0 <= x < 5 != y and country == 'DE'", "0.25"),
    "logic": ("not (x > 0 and y > 0) or not x < 0 and (x == -1 or y == -1)", "0.5"),
    "booleans": ("(x > 0) == (y > 0) or (x > 1) != True", "1"),
    "choice": ("(x if y > 0 else y) > 0.5 and (True if x > 1 else y > 1)",
               "x / 10 if x > 0 else 0.5 - y"),
    "choice_of_constants": ("(1 if x > 0 else 2) + y > 2", "3 if y > 0 else -1"),
    "min_max": ("min(x, y, 3) < 1 or max(x, y) > 4", "max(min(x, 1.0), y / 10)"),
    "abs_ramp": ("abs(x) > 1 and ramp(y, 2) > 0.5", "ramp(x, y)"),
    "missing_number": ("missing(x) or not missing(y)", "0.3 if missing(x) else 0.6"),
    "missing_text": ("missing(email_domain) or missing(ip) and not missing(user_agent)", "1"),
    "text_functions": ("lower(user_agent) == 'headlesschrome' or upper(country) == 'DE' "
                       "or tld(email_domain) == 'com' or domain(email_domain) != ''", "1"),
    "text_join": ("lower(country) + '-' + upper(card_country) != '-'", "0.1"),
    "domains": ("domain_in(email_domain, lists.disposable_domains, ('example.org',)) or "
                "domain_match(email_domain, ('mailinator.com',)) == 'mailinator.com'", "0.9"),
    "contains": ("contains_any(user_agent, ('Headless', 'bot')) and "
                 "find_any(user_agent, ('bot', 'Headless')) == 'Headless'", "0.8"),
    "lists": ("country in ('DE', 'FR') or card_country not in ('DE', '') or "
              "wallet in blocked.wallets or ip in blocked.ips", "x / 100"),
    "ips": ("ip in lists.tor_exit or in_cidr(ip, lists.non_public) or not valid_ip(ip) or "
            "canonical_ip(ip) == '2001:db8::1'", "0.7"),
    "format": ("fmt(x, '.1f') == '1.0' or fmt(country, '') == 'DE'", "0.2"),
    "huge_integer": ("x * 9007199254740993 > 1 or y < 9007199254740993", "1"),
    "constants": ("True and 2 > 1", "2 * 0.25"),
    "constant_false": ("False", "1"),
    "params": ("x >= p.limit and country in p.countries", "ramp(x, p.limit)"),
}  # fmt: skip
NUMBERS = (math.nan, math.inf, -math.inf, -0.0, 0.0, -1.0, 0.5, 1.0, 2.0, 5.0, 1e308)
TEXTS = (None, "", "DE", "de", "x.mailinator.com", "not-an-ip", "2001:DB8::1", "10.0.0.1",
         "185.220.101.4", "HeadlessChrome", "mail.example.org")  # fmt: skip


def language_ruleset(weights: dict[str, float] | None = None):
    rules = {}
    for i, (name, (when, score)) in enumerate(LANGUAGE.items()):
        rules[name] = {
            "category": "behavioral", "weight": (weights or {}).get(name, 0.05 + i / 100),
            "when": _named(when), "score": _named(score),
            "reason": f"{name} {{velocity_1h:g}} {{amount_vs_avg!r}} {{country!r}}",
            "params": {"limit": 2.0, "countries": ["DE", "RU"]} if name == "params" else {},
        }  # fmt: skip
    return ruleset_from_dict({"version": "language", "rules": rules})


def _named(expression: str) -> str:
    """``x`` and ``y`` as two features (whole words only)."""
    return re.sub(r"\by\b", "amount_vs_avg", re.sub(r"\bx\b", "velocity_1h", expression))


def language_rows() -> list[tuple[dict, dict]]:
    rows = []
    for k, (x, y) in enumerate(itertools.product(NUMBERS, NUMBERS)):
        a, b, c, d = (TEXTS[(k * step + step) % len(TEXTS)] for step in (1, 3, 5, 7))
        purchase = {**CLEAN_PURCHASE, "ip": a, "user_agent": b, "email_domain": c,
                    "card_country": d, "geo": {"lat": 1.0, "lon": 2.0, "country": b}}  # fmt: skip
        rows.append((purchase, {**CLEAN_FEATURES, "velocity_1h": x, "amount_vs_avg": y}))
    rows.append(({**CLEAN_PURCHASE, "ip": 12345, "user_agent": 7}, CLEAN_FEATURES))  # not texts
    rows.append(({**CLEAN_PURCHASE, "geo": None, "email_domain": None}, CLEAN_FEATURES))
    return rows


@pytest.mark.parametrize("size", [1, 5, 500])
def test_every_operator_and_function_as_the_reference(size):
    rows = language_rows()
    blocked = ({CLEAN_PURCHASE["wallet"]}, {"10.0.0.1"})
    assert assert_same(rows, blocked, language_ruleset(), size) > 500


def test_every_rule_of_the_language_fires_somewhere():
    rows = language_rows()
    batch = RuleBatch.from_dicts([p for p, _ in rows], [f for _, f in rows],
                                 {CLEAN_PURCHASE["wallet"]}, {"10.0.0.1"})  # fmt: skip
    got = evaluate_batch(batch, language_ruleset())
    fired = {r.rule_id for row in got.results for r in row}
    assert fired == set(LANGUAGE) - {"constant_false"}
    assert any(e.startswith("division: FloatingPointError") for row in got.errors for e in row)


def test_what_reads_texts_is_a_leaf_and_the_rest_native():
    view = language_ruleset()
    code = {a.rule.id: a.compiled.code for a in view.active}
    assert not code["arithmetic"].leaves and isinstance(code["arithmetic"].score, list)
    assert len(code["lists"].leaves) == 4 and code["constants"].when == [("const", 1.0)]
    assert code["constants"].score == 0.5  # a constant score, clipped
    # numpy keeps a choice between two integers as integers, and 2**53 + 1 is no float64:
    # computed by columns (a leaf, or a score deferred wherever the rule fires)
    assert code["choice_of_constants"].score is None
    assert code["huge_integer"].when == [("leaf", 0), ("leaf", 1), ("or",)]


def test_organizer_overrides_apply_to_their_rows_only():
    doc = {"version": "o", "rules": {
        "high": {"category": "behavioral", "weight": 0.5, "params": {"limit": 2.0},
                 "when": "velocity_1h >= p.limit", "score": "ramp(velocity_1h, p.limit)",
                 "reason": "{velocity_1h:g} >= {p.limit:g}"},
        "other": {"category": "behavioral", "weight": 0.2, "when": "velocity_1h > 0",
                  "reason": "some"}},
        "organizers": {"org_a": {"rules": {"high": {"params": {"limit": 4.0}, "weight": 0.9}}},
                       "org_b": {"rules": {"other": {"enabled": False}}}}}  # fmt: skip
    ruleset = ruleset_from_dict(doc)
    rows = [({**CLEAN_PURCHASE, "organizer_id": org}, {**CLEAN_FEATURES, "velocity_1h": v})
            for org in ("org_a", "org_b", "org_c", None) for v in (1.0, 3.0, 5.0)]  # fmt: skip
    for size in (1, 4, len(rows)):
        assert assert_same(rows, (set(), set()), ruleset, size) > 10
    got = evaluate_batch(RuleBatch.from_dicts([p for p, _ in rows], [f for _, f in rows]),
                         ruleset)  # fmt: skip
    ids = [[r.rule_id for r in row] for row in got.results]
    assert ids[:3] == [["other"], ["other"], ["high", "other"]]  # org_a: limit 4
    assert ids[3:6] == [[], ["high"], ["high"]]  # org_b: "other" disabled
    assert ids[6:9] == ids[9:] == [["other"], ["high", "other"], ["high", "other"]]
    assert got.results[2][0].reason == "5 >= 4" and got.results[7][0].reason == "3 >= 2"


def test_missing_values_fire_the_missing_rules_only_where_missing():
    doc = {"version": "m", "rules": {
        "no_age": {"category": "identity", "weight": 0.1, "when": "missing(account_age_days)",
                   "reason": "none"},
        "no_domain": {"category": "identity", "weight": 0.1, "when": "missing(email_domain)",
                      "reason": "none"}}}  # fmt: skip
    ruleset = ruleset_from_dict(doc)
    ages, domains = (-1.0, math.nan, 0.0, 3.0), (None, "", "a.com")
    rows = [({**CLEAN_PURCHASE, "email_domain": d}, {**CLEAN_FEATURES, "account_age_days": a})
            for a in ages for d in domains]  # fmt: skip
    got = evaluate_batch(RuleBatch.from_dicts([p for p, _ in rows], [f for _, f in rows]),
                         ruleset)  # fmt: skip
    for (purchase, features), results in zip(rows, got.results, strict=True):
        age = features["account_age_days"]
        want = ["no_age"] * (age == -1.0 or age != age) + ["no_domain"] * (
            not purchase["email_domain"]
        )
        assert [r.rule_id for r in results] == want
    assert assert_same(rows, (set(), set()), ruleset, 5) > 5


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -0.0, 0.0, -3.0, 0.25, 1.0,
                                   1.5, 1e308])  # fmt: skip
def test_scores_are_clipped_as_numpy_clips_them(value):
    doc = {"version": "s", "rules": {"s": {"category": "behavioral", "weight": 1.0,
                                           "when": "True", "score": "velocity_1h * 1",
                                           "reason": "r"}}}  # fmt: skip
    ruleset = ruleset_from_dict(doc)
    batch = RuleBatch.from_dicts([CLEAN_PURCHASE], [{**CLEAN_FEATURES, "velocity_1h": value}])
    got = evaluate_batch(batch, ruleset).results[0]
    want = np.clip(np.full(1, value, dtype=np.float64), 0.0, 1.0)
    want = np.where(np.isnan(want), 0.0, want)
    if math.isfinite(value):  # else numpy's multiply is deferred to: its own clip
        assert np.float64(got[0].score).tobytes() == want[0].tobytes()
    assert got == evaluate_columns(batch, ruleset).results[0]


def test_a_malformed_program_is_refused():
    with pytest.raises(ValueError, match="needs 2 values"):
        Program([RuleCode([("feature", 0), ("add",)], 1.0, ())])
    with pytest.raises(ValueError, match="out of range"):
        Program([RuleCode([("feature", len(FEATURE_NAMES))], 1.0, ())])
    with pytest.raises(ValueError, match="leaves 2 values"):
        Program([RuleCode([("const", 1.0), ("const", 1.0)], 1.0, ())])
    with pytest.raises(ValueError, match="unknown operation"):
        Program([RuleCode([("pow",)], 1.0, ())])
