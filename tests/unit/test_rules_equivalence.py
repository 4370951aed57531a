"""The expression engine gives the same hits, scores, reasons, hard blocks and errors as the
74 Python rule functions it replaced (``tests/support/legacy_rules``), row for row:

- on a simulated month (``models/simulator.py`` through ``FeatureEngine``), decided in
  batches of 500 with blocklists and organizer overrides;
- on the same purchases with fields and features perturbed towards every rule's thresholds
  and edge inputs (missing values, bad IPs, odd domains), where the month alone leaves some
  rules silent;
- on the hand-built firing and near-miss cases of every rule.

Both engines read the same rules file (settings, file order). Differences that are deliberate
are not in these rows: see processors/README.md, "Rules", and the tests named there.
"""

from __future__ import annotations

from collections import Counter

import pytest

from models.rules_bench import purchases_with_features, sample_blocklists
from models.simulator import SimConfig, simulate
from processors.rules import RuleBatch, evaluate_batch
from tests.support import legacy_rules
from tests.support.rule_cases import CASES, case_row, overridden_ruleset, perturbed

pytestmark = [pytest.mark.unit, pytest.mark.slow]

BATCH = 500


@pytest.fixture(scope="module")
def ruleset():
    return overridden_ruleset()


@pytest.fixture(scope="module")
def month():
    return purchases_with_features(simulate(SimConfig(seed=3, days=30, n_users=4_000)))


def compare(rows, blocked, ruleset) -> Counter:
    """Assert both engines agree on every row; the rules that fired, counted."""
    fired: Counter = Counter()
    for start in range(0, len(rows), BATCH):
        chunk = rows[start : start + BATCH]
        batch = RuleBatch.from_dicts([p for p, _ in chunk], [f for _, f in chunk], *blocked)
        new = evaluate_batch(batch, ruleset)
        for i, (purchase, features) in enumerate(chunk):
            view = ruleset.for_organizer(purchase.get("organizer_id"))
            old = legacy_rules.evaluate(legacy_rules.RuleContext(purchase, features, *blocked), view)
            got = new.row(i)
            assert got.results == old.results, (start + i, purchase, features)
            assert got.rule_score == old.rule_score, (start + i, got.rule_score, old.rule_score)
            assert (got.hard_block, got.errors) == (old.hard_block, old.errors), start + i
            fired.update(r.rule_id for r in old.results)
    return fired


def setup_module():
    legacy_rules.load_catalogue()


def test_same_outcomes_on_a_simulated_month(month, ruleset):
    fired = compare(month, sample_blocklists([p for p, _ in month]), ruleset)
    assert len(month) > 5_000
    assert len(fired) >= 45, sorted(set(ruleset.rules) - set(fired))
    assert {"blocklisted_wallet", "blocklisted_ip", "blocklisted_seller"} <= set(fired)


def test_same_outcomes_on_perturbed_purchases_where_every_rule_fires(month, ruleset):
    rows = perturbed(month[:6_000], seed=5)
    wallets, ips = sample_blocklists([p for p, _ in rows])
    fired = compare(rows, (wallets, ips | {"10.0.0.1", "2001:DB8::1"}), ruleset)
    assert set(fired) == set(ruleset.rules), sorted(set(ruleset.rules) - set(fired))
    assert min(fired.values()) >= 3, fired.most_common()[-5:]


def test_same_outcomes_on_every_hand_built_case(ruleset):
    for case in (c for pair in CASES.values() for c in pair):
        purchase, features, wallets, ips = case_row(case)
        compare([(purchase, features)], (wallets, ips), ruleset)
