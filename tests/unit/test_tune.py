from __future__ import annotations

import shutil

import numpy as np
import pytest

from models.tune import Budget, choose, effect, tune, write_tuned
from processors.policy import Thresholds
from processors.rules import DEFAULT_RULES_PATH, load_ruleset

pytestmark = pytest.mark.unit


def test_thresholds_are_the_lowest_within_the_budget():
    legit = np.linspace(0.0, 0.999, 10_000)  # uniform legit scores
    t = choose(legit, Budget(not_approved=0.03, blocked=0.001, review=0.01))
    fraud = np.zeros(len(legit), dtype=bool)
    hard = np.zeros(len(legit), dtype=bool)
    out = effect(legit, fraud, hard, t)
    assert out["legit_friction"] <= 0.03 and out["legit_blocked"] <= 0.001
    assert out["legit_friction"] > 0.029  # as low as the budget allows, not lower
    assert t.two_fa <= t.review <= t.block


def _decisions(rng, org, n_legit, n_fraud):
    rows, labels = [], {}
    for k in range(n_legit + n_fraud):
        fraud = k >= n_legit
        score = float(rng.beta(2, 4) if fraud else rng.beta(1, 12))
        pid = f"{org}-{k}"
        rows.append({"purchase_id": pid, "organizer_id": org, "score": score,
                     "decision": "APPROVED"})
        labels[pid] = {"is_fraud": fraud, "pattern": "x" if fraud else None}
    return rows, labels


def test_tune_per_organizer_and_write_a_loadable_rules_file(tmp_path):
    rng = np.random.default_rng(1)
    big, big_labels = _decisions(rng, "org_big", 2000, 100)
    small, small_labels = _decisions(rng, "org_small", 50, 5)
    hand, hand_labels = _decisions(rng, "org_stadium_tour", 2000, 100)  # hand-written policy
    rules = tmp_path / "rules.toml"
    shutil.copy(DEFAULT_RULES_PATH, rules)
    before = load_ruleset(rules)
    tuned = tune(big + small + hand, {**big_labels, **small_labels, **hand_labels}, before)
    assert "skipped" in tuned["org_small"]
    after = tuned["org_big"]["after_effect"]
    assert after["legit_friction"] <= 0.03 and after["legit_blocked"] <= 0.001
    assert after["fraud_not_approved"] > tuned["org_big"]["before_effect"]["fraud_not_approved"]
    written = write_tuned(rules, tuned, "2025-03-10..2025-03-17", Budget())
    assert written == {"written": ["org_big"], "kept_hand_written": ["org_stadium_tour"]}
    again = write_tuned(rules, tuned, "2025-03-10..2025-03-17", Budget())  # replaces, once
    assert again == written and rules.read_text().count("[organizers.org_big.policy]") == 1
    loaded = load_ruleset(rules)
    t = tuned["org_big"]["thresholds"]
    assert loaded.for_organizer("org_big").thresholds == Thresholds(**t)
    assert loaded.version != before.version and "evidence:" in rules.read_text()
    assert loaded.for_organizer("org_stadium_tour").thresholds == before.for_organizer(
        "org_stadium_tour").thresholds
