"""``sentinel tune`` spends the not-approved budget between ``two_fa`` and ``two_fa_model``,
pools organizers on demand and writes the ``[policy]`` table."""

from __future__ import annotations

import re

import numpy as np
import pytest

from models.tune import POOLED, Budget, Scores, choose, effect, tune, write_pooled, write_tuned
from processors.policy import Thresholds
from processors.rules import DEFAULT_RULES_PATH, load_ruleset

pytestmark = pytest.mark.unit


def _world(rng, n_legit=20_000, n_fraud=400):
    """Legit: a quarter carry weak rule evidence (final up to 0.5) and a low model score;
    fraud: a moderate model score and little rule evidence."""
    legit_model = rng.beta(1, 60, n_legit)
    rules = np.where(rng.random(n_legit) < 0.25, rng.uniform(0.3, 0.62, n_legit), 0.0)
    legit_final = legit_model + (1 - legit_model) * 0.8 * rules
    fraud_model = rng.beta(2, 6, n_fraud)
    fraud_final = fraud_model + (1 - fraud_model) * 0.8 * rng.uniform(0.0, 0.1, n_fraud)
    return Scores(legit_final, legit_model), Scores(fraud_final, fraud_model)


def _caught(fraud: Scores, t: Thresholds) -> float:
    return float(np.mean((fraud.final > t.two_fa) | (fraud.model > t.two_fa_model)))


def test_the_budget_goes_where_it_catches_more_fraud():
    legit, fraud = _world(np.random.default_rng(7))
    budget = Budget(not_approved=0.03)
    final_only = choose(legit.final, budget)
    both = choose(legit, budget, fraud)
    assert final_only.two_fa_model == 1.0 and both.two_fa_model < 0.2
    assert _caught(fraud, both) > _caught(fraud, final_only) + 0.2
    n = len(legit.final)
    flagged = (legit.final > both.two_fa) | (legit.model > both.two_fa_model)
    assert flagged.sum() <= int(0.03 * n)  # within the budget
    assert flagged.sum() >= int(0.03 * n) - 2  # and using it


def test_kept_thresholds_stay():
    legit, fraud = _world(np.random.default_rng(8))
    current = Thresholds(block=0.9, review=0.7, two_fa=0.49, two_fa_model=0.3)
    t = choose(legit, Budget(), fraud, current, keep=("review", "block", "two_fa"))
    assert (t.block, t.review, t.two_fa) == (0.9, 0.7, 0.49) and t.two_fa_model < 0.3
    assert choose(legit, Budget(), fraud, current, keep=("two_fa_model",)).two_fa_model == 0.3


def test_two_fa_never_passes_a_kept_review_threshold():
    """A budget best spent on the model alone (every rule-flagged legit purchase scores over
    the kept review threshold) sets two_fa to that threshold, not above it: a valid policy."""
    rng = np.random.default_rng(9)
    legit_model = rng.beta(1, 60, 20_000)
    legit_final = np.where(rng.random(20_000) < 0.01, 0.7, legit_model)
    fraud_model = rng.beta(2, 6, 400)
    current = Thresholds(block=0.85, review=0.65, two_fa=0.4, two_fa_model=0.1)
    t = choose(Scores(legit_final, legit_model), Budget(not_approved=0.02),
               Scores(fraud_model, fraud_model), current, keep=("review", "block"))
    assert t.two_fa <= t.review == 0.65 and t.two_fa_model < 0.1
    Thresholds(block=t.block, review=t.review, two_fa=t.two_fa, two_fa_model=t.two_fa_model)

def test_effect_counts_the_model_step():
    t = Thresholds(two_fa_model=0.1)
    scores, model = np.array([0.05, 0.05, 0.5]), np.array([0.05, 0.2, 0.0])
    out = effect(scores, np.zeros(3, bool), np.zeros(3, bool), t, model)
    assert out["legit_friction"] == pytest.approx(2 / 3)
    assert effect(scores, np.zeros(3, bool), np.zeros(3, bool), t)["legit_friction"] == (
        pytest.approx(1 / 3))  # no model scores: no model step


def _decisions(rng, orgs):
    legit, fraud = _world(rng, 3_000, 120)
    rows, labels = [], {}
    for k, (final, model, is_fraud) in enumerate(
            [(f, m, False) for f, m in zip(legit.final, legit.model, strict=True)]
            + [(f, m, True) for f, m in zip(fraud.final, fraud.model, strict=True)]):
        pid = f"p{k}"
        rows.append({"purchase_id": pid, "organizer_id": orgs[k % len(orgs)],
                     "score": float(final), "model_score": float(model),
                     "decision": "APPROVED"})
        labels[pid] = {"is_fraud": is_fraud, "pattern": "x" if is_fraud else None}
    return rows, labels


def test_pooled_thresholds_are_written_to_the_policy_table(tmp_path):
    rules = tmp_path / "rules.toml"
    shipped = DEFAULT_RULES_PATH.read_text()
    rules.write_text(re.sub(r"^two_fa_model = .*\n", "", shipped, flags=re.M))  # not set yet
    rows, labels = _decisions(np.random.default_rng(9), ["org_a", "org_b", "org_c"])
    before = load_ruleset(rules)
    write_tuned(rules, tune(rows, labels, before), "w0", Budget())  # per organizer first
    assert "[organizers.org_a.policy]" in rules.read_text()
    tuned = tune(rows, labels, before, pooled=True, keep=("review", "block"))
    assert list(tuned) == [POOLED]
    entry = tuned[POOLED]
    assert entry["after_effect"]["legit_friction"] <= 0.03
    assert entry["after_effect"]["fraud_not_approved"] > entry["before_effect"][
        "fraud_not_approved"]
    write_pooled(rules, entry, "2025-03-05..2025-03-17", Budget())
    write_pooled(rules, entry, "2025-03-05..2025-03-17", Budget())  # replaces, once
    text, after = rules.read_text(), load_ruleset(rules)
    assert after.thresholds == Thresholds(**entry["thresholds"])
    assert (after.thresholds.review, after.thresholds.block) == (
        before.thresholds.review, before.thresholds.block)
    assert "[organizers.org_a.policy]" not in text  # the per-organizer block would override
    assert text.count("# evidence:") == 1 and text.count("two_fa_model =") == 1
    assert after.for_organizer("org_stadium_tour").thresholds.review == 0.60  # hand-written
    assert after.version != before.version and set(after.rules) == set(before.rules)


def test_unknown_kept_threshold_is_refused():
    with pytest.raises(ValueError, match="two_fa_modle"):
        tune([], {}, load_ruleset(), keep=("two_fa_modle",))


def test_the_command_pools_several_worlds_each_replayed_on_its_own(tmp_path, capsys):
    import json

    from infra import cli
    from models.simulator import SimConfig, simulate, write_jsonl

    worlds = []
    for seed in (61, 62):
        worlds.append(tmp_path / f"w{seed}.jsonl")
        write_jsonl(worlds[-1], simulate(SimConfig(seed=seed, days=3, n_users=1500, n_shows=20,
                                                   fraud_rate=0.05)))
    rules = tmp_path / "rules.toml"
    rules.write_text(DEFAULT_RULES_PATH.read_text())

    def run(paths: list, *extra: str) -> dict:
        events = [a for p in paths for a in ("--events", str(p))]
        assert cli.main(["tune", "--since", "2025-03-04T00:00:00+00:00", "--until",
                         "2025-03-06T00:00:00+00:00", *events, "--rules", str(rules),
                         "--pooled", "--keep", "review,block", "--min-legit", "100",
                         *extra]) == 0
        return json.loads(capsys.readouterr().out)["organizers"][POOLED]

    one = run(worlds[:1], "--dry-run")
    both = run(worlds)
    assert both["after_effect"]["legit"] > one["after_effect"]["legit"] > 300
    assert "of w61.jsonl, w62.jsonl" in rules.read_text()
    assert load_ruleset(rules).thresholds == Thresholds(**both["thresholds"])
