"""The decision policy: hard rules, the model/rule combination and threshold boundaries."""

from __future__ import annotations

import pytest

from processors.policy import (
    DEFAULT_THRESHOLDS,
    RULE_WEIGHT,
    Thresholds,
    Verdict,
    combine,
    decide,
    verdict_for,
)
from processors.rules import load_ruleset

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("score", "verdict"),
    [
        (0.0, Verdict.APPROVED),
        (0.40, Verdict.APPROVED),  # thresholds are strict: > 0.40
        (0.4000001, Verdict.REQUIRE_2FA),
        (0.65, Verdict.REQUIRE_2FA),
        (0.6500001, Verdict.MANUAL_REVIEW),
        (0.85, Verdict.MANUAL_REVIEW),
        (0.8500001, Verdict.BLOCKED),
        (1.0, Verdict.BLOCKED),
    ],
)
def test_thresholds_at_their_boundaries(score, verdict):
    assert verdict_for(score) == verdict
    assert decide(score, 0.0, False) == (verdict, score)  # the model alone


def test_hard_rule_blocks_whatever_the_scores():
    assert decide(0.0, 0.0, True) == (Verdict.BLOCKED, 1.0)
    assert decide(0.01, 0.2, True, Thresholds(block=1.0, review=1.0, two_fa=1.0)) == (
        Verdict.BLOCKED,
        1.0,
    )


def test_a_confident_model_alone_blocks():
    assert decide(0.9, 0.0, False) == (Verdict.BLOCKED, 0.9)


@pytest.mark.parametrize(
    ("rule", "verdict"),
    [
        (1.0, Verdict.MANUAL_REVIEW),  # 0.8: strong rule evidence alone reaches review
        (0.82, Verdict.MANUAL_REVIEW),
        (0.8, Verdict.REQUIRE_2FA),  # 0.64
        (0.6, Verdict.REQUIRE_2FA),  # 0.48
        (0.5, Verdict.APPROVED),  # exactly 0.40
        (0.2, Verdict.APPROVED),
    ],
)
def test_rule_evidence_alone_reaches_review_or_2fa_but_never_blocks(rule, verdict):
    got, final = decide(0.0, rule, False)
    assert (got, final) == (verdict, pytest.approx(RULE_WEIGHT * rule))


def test_moderate_model_and_rule_evidence_escalate_together():
    assert combine(0.5, 0.5) == pytest.approx(1 - 0.5 * (1 - 0.8 * 0.5))  # 0.70
    assert decide(0.5, 0.5, False)[0] == Verdict.MANUAL_REVIEW
    assert decide(0.3, 0.0, False)[0] == Verdict.APPROVED
    assert decide(0.3, 0.3, False)[0] == Verdict.REQUIRE_2FA  # 0.468
    assert decide(0.7, 0.8, False)[0] == Verdict.BLOCKED  # 0.892


def test_combination_is_monotonic_and_bounded():
    grid = [i / 20 for i in range(21)]
    for m in grid:
        row = [combine(m, r) for r in grid]
        assert row == sorted(row) and all(0.0 <= x <= 1.0 for x in row)
        assert combine(m, 0.0) == pytest.approx(m)
    for r in grid:
        col = [combine(m, r) for m in grid]
        assert col == sorted(col)


def test_out_of_range_and_nan_scores_are_clamped():
    assert combine(float("nan"), 0.0) == 0.0
    assert combine(1.7, -3.0) == 1.0
    assert decide(-0.5, float("nan"), False) == (Verdict.APPROVED, 0.0)


def test_thresholds_must_be_ordered():
    assert DEFAULT_THRESHOLDS == Thresholds(block=0.85, review=0.65, two_fa=0.40)
    with pytest.raises(ValueError, match="two_fa <= review <= block"):
        Thresholds(block=0.6, review=0.7)


def test_organizer_thresholds_from_the_rules_file_change_the_verdict():
    ruleset = load_ruleset()
    tour = ruleset.for_organizer("org_stadium_tour").thresholds
    assert decide(0.62, 0.0, False, ruleset.thresholds)[0] == Verdict.REQUIRE_2FA
    assert decide(0.62, 0.0, False, tour)[0] == Verdict.MANUAL_REVIEW


def test_verdicts_are_the_schema_symbols():
    import json
    from pathlib import Path

    schema = json.loads(Path("schemas/decision.avsc").read_text())
    symbols = next(f for f in schema["fields"] if f["name"] == "decision")["type"]["symbols"]
    assert [v.value for v in Verdict] == symbols
