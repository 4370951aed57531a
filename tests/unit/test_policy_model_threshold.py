"""``two_fa_model``: the model's probability alone steps an APPROVED purchase up to 2FA."""

from __future__ import annotations

import numpy as np
import pytest

from processors.policy import VERDICTS, Thresholds, Verdict, decide, decide_columns
from processors.rules import RulesFileError, load_ruleset, ruleset_from_dict

pytestmark = pytest.mark.unit

T = Thresholds(two_fa_model=0.1)


@pytest.mark.parametrize(
    ("model", "rule", "hard", "verdict"),
    [
        (0.1, 0.0, False, Verdict.APPROVED),  # strict: > 0.1
        (0.1000001, 0.0, False, Verdict.REQUIRE_2FA),
        (0.2, 0.0, False, Verdict.REQUIRE_2FA),
        (0.05, 0.4, False, Verdict.APPROVED),  # final 0.316: rules do not count here
        (0.2, 0.9, False, Verdict.MANUAL_REVIEW),  # a higher verdict is kept
        (0.7, 0.0, False, Verdict.MANUAL_REVIEW),
        (0.2, 0.0, True, Verdict.BLOCKED),
        (float("nan"), 0.0, False, Verdict.APPROVED),
    ],
)
def test_the_model_alone_steps_up_an_approved_purchase(model, rule, hard, verdict):
    assert decide(model, rule, hard, T)[0] == verdict


def test_off_by_default():
    assert Thresholds().two_fa_model == 1.0
    assert decide(0.39, 0.0, False) == (Verdict.APPROVED, 0.39)


def test_the_batch_path_equals_the_scalar_one():
    rng = np.random.default_rng(3)
    model, rule = rng.random(2_000) ** 3, rng.random(2_000) ** 2
    model[:7] = [0.1, np.nan, -1.0, 1.5, 0.1000001, np.inf, -np.inf]
    rule[:4] = [np.nan, -0.5, 2.0, np.inf]
    hard = rng.random(2_000) < 0.01
    rows = [Thresholds(two_fa_model=v) for v in (0.1, 0.3, 1.0)]
    table = np.asarray([[t.block, t.review, t.two_fa, t.two_fa_model]
                        for t in (rows[i % 3] for i in range(2_000))])
    codes, finals = decide_columns(model, rule, hard, table)
    for i in range(2_000):
        verdict, final = decide(float(model[i]), float(rule[i]), bool(hard[i]), rows[i % 3])
        assert (VERDICTS[codes[i]], finals[i]) == (verdict, final), i
    three = decide_columns(model, rule, hard, table[:, :3])[0]
    assert (three <= codes).all() and (three != codes).any()  # n x 3: the step is off


def _doc(policy: dict) -> dict:
    return {"version": "t", "policy": policy,
            "organizers": {"org_x": {"policy": {"two_fa_model": 0.2}}}}


def test_read_from_the_rules_file_per_organizer():
    ruleset = ruleset_from_dict(_doc({"two_fa_model": 0.08}))
    assert ruleset.thresholds.two_fa_model == 0.08
    assert ruleset.for_organizer("org_x").thresholds.two_fa_model == 0.2
    assert ruleset.for_organizer("org_y").thresholds.two_fa_model == 0.08


@pytest.mark.parametrize("value", [1.5, -0.1, "0.1", True])
def test_a_bad_value_names_the_key(value):
    with pytest.raises(RulesFileError, match="two_fa_model"):
        ruleset_from_dict(_doc({"two_fa_model": value}))


def test_the_shipped_file_sets_it():
    assert 0.0 < load_ruleset().thresholds.two_fa_model < load_ruleset().thresholds.two_fa
