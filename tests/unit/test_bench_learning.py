"""The learning benchmark's pieces: the new fraud pattern starts when configured, on wallets
nobody used before, and the before/after measures count what they name."""

from __future__ import annotations

from datetime import timedelta

import pytest

from models.bench_learning import quality
from models.sim.config import SimConfig
from models.sim.novel import PATTERN, simulate_with_novel

pytestmark = pytest.mark.unit


def test_farms_start_on_their_day_on_fresh_wallets():
    config = SimConfig(seed=5, days=8, n_users=3000, n_shows=40)
    events = list(simulate_with_novel(config, from_day=4, rate=0.05))
    farm = {r["purchase_id"] for k, r in events if k == "label" and r["pattern"] == PATTERN}
    purchases = [r for k, r in events if k == "purchase"]
    farm_buys = [p for p in purchases if p["purchase_id"] in farm]
    assert farm_buys and min(p["occurred_at"] for p in farm_buys) >= config.start + timedelta(days=4)
    first_farm = {}
    for p in farm_buys:
        first_farm.setdefault(p["wallet"], p["occurred_at"])
    # a farm wallet has no purchase by anyone else, before or after: fresh, not a user's
    assert not any(p["wallet"] in first_farm for p in purchases if p["purchase_id"] not in farm)


def _d(pid: str, verdict: str, model: float = 0.01, rule: float = 0.0) -> dict:
    return {"purchase_id": pid, "decision": verdict, "model_score": model, "rule_score": rule,
            "score": model}


def test_quality_counts_recall_and_friction_by_group():
    truth = {"f1": PATTERN, "f2": PATTERN, "k1": "scalper_bot", "l1": "", "l2": "", "l3": "",
             "l4": ""}
    decisions = [_d("f1", "BLOCKED", 0.99), _d("f2", "APPROVED"), _d("k1", "REQUIRE_2FA"),
                 _d("l1", "REQUIRE_2FA", rule=0.9), _d("l2", "APPROVED"), _d("l3", "APPROVED"),
                 _d("l4", "MANUAL_REVIEW", 0.7)]
    got = quality(decisions, truth)
    assert got["recall_new_pattern"] == 0.5 and got["recall_new_pattern_flagged"] == 0.5
    assert got["recall_known_patterns"] == 1.0 and got["legit_friction"] == 0.5
    assert got["legit_friction_model_alone"] == 0.25
    assert got["legit_friction_rules_alone"] == 0.25
