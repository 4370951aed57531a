from __future__ import annotations

import pytest

from models.detection_bench import Case, run_case, summarize
from models.sim.config import SimConfig

pytestmark = pytest.mark.unit


def _row(scenario, fraud, verdict, currency="USD", case="c"):
    return {"case": case, "scenario": scenario, "currency": currency, "organizer": "o",
            "is_fraud": fraud, "verdict": verdict}


def test_headline_figures_count_what_they_name():
    rows = (
        [_row("scalper_bot", True, "BLOCKED")] * 18
        + [_row("scalper_bot", True, "APPROVED")] * 2
        + [_row("friendly_fraud", True, "APPROVED")] * 10  # apart: not in fraud_not_approved
        + [_row("legit_regular", False, "APPROVED")] * 960
        + [_row("legit_regular", False, "BLOCKED")] * 1
        + [_row("legit_onsale", False, "MANUAL_REVIEW", "MXN")] * 9
        + [_row("legit_onsale", False, "APPROVED", "MXN")] * 30
    )
    s = summarize(rows)
    assert s["fraud_not_approved"] == pytest.approx(0.9)
    assert s["legit_friction"] == pytest.approx(10 / 1000)
    assert s["legit_blocked"] == pytest.approx(1 / 1000)
    assert s["max_legit_review_share"] == pytest.approx(9 / 39)
    assert s["friendly_fraud"]["APPROVED"] == 1.0
    assert s["targets"]["fraud_not_approved"]["met"] is False
    assert s["targets"]["legit_blocked"]["met"] is True
    assert s["currencies"]["MXN"]["legit_review"] == pytest.approx(9 / 39)


def test_training_seed_is_refused():
    with pytest.raises(ValueError, match="training seed"):
        run_case(Case("x", SimConfig(seed=7, days=1, n_users=100)), None, None)


def test_other_seeds_take_the_variants_in_turn():
    from models.detection_bench import default_suite

    default = default_suite()
    assert [c.name for c in default] == ["base-101", "busy-202", "quiet-303"]
    assert (default[1].sim.n_shows, default[1].sim.fraud_rate) == (90, 0.025)
    assert (default[2].sim.n_shows, default[2].sim.fraud_rate) == (220, 0.01)
    other = default_suite(days=3, users=500, seeds=(818, 919, 1212, 1313))
    assert [c.name for c in other] == ["base-818", "busy-919", "quiet-1212", "base-1313"]
    assert [c.sim.seed for c in other] == [818, 919, 1212, 1313]
    assert other[1].sim.n_shows == 90 and other[3].sim == default[0].sim.__class__(
        seed=1313, days=3, n_users=500)
