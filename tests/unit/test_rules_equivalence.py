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

import copy
import tomllib
from collections import Counter

import numpy as np
import pytest

from models.rules_bench import purchases_with_features, sample_blocklists
from models.simulator import SimConfig, simulate
from processors.rules import DEFAULT_RULES_PATH, RuleBatch, evaluate_batch, ruleset_from_dict
from tests.support import legacy_rules
from tests.support.rule_cases import CASES, case_row

pytestmark = [pytest.mark.unit, pytest.mark.slow]

BATCH = 500
NUMBERS = (-1.0, 0.0, 0.01, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 9.0, 10.0, 12.0, 20.0,
           29.9, 30.0, 60.0, 100.0, 500.0, 900.0, 1_000.0, 3_600.0, 10_000.0, 20_000.0,
           50_000.0, 86_400.0, 100_000.0, 200_000.0, 500_000.0, 1e7)  # fmt: skip
FIELDS = {
    "email_domain": (None, "", "x.mailinator.com", "Deals.XYZ", "xyz.de", ".mail.example.com.",
                     "a.b.guerrillamail.com", "notmailinator.com", "example.tk"),
    "user_agent": (None, "", "python-requests/2.31", "Mozilla/5.0 HeadlessChrome/120",
                   "Mozilla/5.0 (X11)", "Googlebot/2.1", "curl/8.0"),
    "ip": (None, "", "not-an-ip", "185.220.101.4", "3.5.1.1", "146.70.1.1", "10.0.0.1",
           "100.64.1.1", "192.0.0.170", "81.2.69.160", "2a00:1450:4001:80b::200e",
           "2001:DB8::1", "::ffff:10.0.0.1", "::ffff:8.8.8.8", "fe80::1", "010.1.1.1"),
    "card_country": (None, "", "us", "KP", "de", "IR"),
    "payment_method": ("CARD", "CRYPTO", "WALLET"),
    "channel": ("PRIMARY", "RESALE"),
}  # fmt: skip
GEOS = (None, {"lat": 0.0, "lon": 0.0, "country": "ir"}, {"lat": 52.5, "lon": 13.4, "country": "DE"},
        {"lat": 40.7, "lon": -74.0, "country": "US"})  # fmt: skip


@pytest.fixture(scope="module")
def ruleset():
    """The shipped rules with overrides for some of the simulated organizers."""
    doc = tomllib.loads(DEFAULT_RULES_PATH.read_text())
    doc["organizers"].update({
        "org_001": {"rules": {"quantity_over_limit": {"params": {"max_tickets": 2}},
                              "unverified_email": {"enabled": False}}},
        "org_002": {"rules": {"rapid_sequence": {"weight": 0.9, "params": {"min_gap_secs": 120.0}},
                              "high_velocity_1h": {"params": {"max_purchases": 2}}}},
        "org_003": {"rules": {"blocklisted_ip": {"enabled": False},
                              "bot_user_agent": {"params": {"patterns": ["mozilla"]}}}},
        "org_004": {"rules": {"new_wallet": {"weight": 0.0}}},
    })  # fmt: skip
    return ruleset_from_dict(doc)


@pytest.fixture(scope="module")
def month():
    return purchases_with_features(simulate(SimConfig(seed=3, days=30, n_users=4_000)))


def perturbed(rows: list[tuple[dict, dict]], seed: int) -> list[tuple[dict, dict]]:
    """Copies of ``rows`` with some fields and features set to edge values."""
    rng = np.random.default_rng(seed)
    out = []
    for purchase, features in rows:
        p, f = dict(purchase), dict(features)
        for name in f:
            if rng.random() < 0.12:
                f[name] = float(NUMBERS[rng.integers(len(NUMBERS))])
        for name, values in FIELDS.items():
            if rng.random() < 0.2:
                p[name] = values[rng.integers(len(values))]
        if rng.random() < 0.2:
            p["geo"] = copy.deepcopy(GEOS[rng.integers(len(GEOS))])
        if rng.random() < 0.1:
            p["seller_wallet"] = p["wallet"] if rng.random() < 0.5 else purchase.get("seller_wallet")
        out.append((p, f))
    return out


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
