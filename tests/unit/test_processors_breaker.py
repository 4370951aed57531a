"""The blast-radius breaker (pure): a rule over its ceiling in the sliding window trips,
a shadowed rule is recorded but changes no verdict, ceilings come from the rules file."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

from processors.breaker import (
    DEFAULT_CEILING,
    Ceiling,
    RuleBreaker,
    blocked_by,
    parse_ceiling,
)
from processors.decide import Blocked, decide_batch
from processors.features import FEATURE_NAMES
from processors.rules import DEFAULT_RULES_PATH, RulesFileError, ruleset_from_dict
from tests.support.records import T0, purchase

pytestmark = pytest.mark.unit

BAD_RULE = {"category": "transaction", "weight": 1.0, "when": "quantity >= 1", "hard": True,
            "reason": "everything"}


def _ruleset(**bad) -> object:
    doc = tomllib.loads(DEFAULT_RULES_PATH.read_text())
    doc["version"] = "test"
    doc["rules"]["block_everything"] = {**BAD_RULE, **bad}
    return ruleset_from_dict(doc)


def test_trips_when_the_share_blocked_exceeds_the_ceiling_in_the_window():
    breaker = RuleBreaker()
    clean = [((), ())] * 99
    blocks, co_fires = (("r", "x"), ("r",)), (("r", "x"), ("r",))
    assert breaker.observe(0, clean + [blocks]) == []  # 1 %: under
    trips = breaker.observe(1000, [co_fires] * 3)
    assert [t.rule_id for t in trips] == ["r"] and trips[0].hits == 4  # x fired, blocked none
    assert trips[0].share == pytest.approx(4 / 103)
    # shadowed: not reported again; its counts are dropped
    assert breaker.observe(2000, [blocks], shadowed={"r"}) == []
    breaker.forget({"r"})
    assert breaker.observe(3000, clean) == []


def test_old_batches_leave_the_window_and_small_samples_never_trip():
    breaker = RuleBreaker({"r": Ceiling(share=0.02, window_ms=60_000, min_purchases=100)})
    assert breaker.observe(0, [(("r",), ("r",))] * 50) == []  # under min_purchases
    assert breaker.observe(120_000, [((), ())] * 100) == []  # the burst has expired
    fired_only = RuleBreaker({"r": Ceiling(share=0.5, of="fired", min_purchases=2)})
    assert fired_only.observe(0, [(("r",), ())] * 3)[0].share == 1.0


def test_blocked_by_names_the_hard_rules_or_the_necessary_evidence():
    from processors.policy import combine
    from processors.rules import RuleResult

    hard = [RuleResult("ban", "network", 1.0, "", True), RuleResult("x", "identity", 1.0, "")]
    assert blocked_by(hard, "BLOCKED", 0.1, lambda _: 1.0, 0.85, combine) == ("ban",)
    soft = [RuleResult("big", "transaction", 1.0, ""), RuleResult("tiny", "identity", 0.1, "")]
    # model 0.5: with "big" (weight 0.9) final > 0.85; without it, not; "tiny" is not needed
    weights = {"big": 0.9, "tiny": 0.1}
    assert blocked_by(soft, "BLOCKED", 0.5, weights.get, 0.85, combine) == ("big",)
    assert blocked_by(soft, "MANUAL_REVIEW", 0.5, weights.get, 0.85, combine) == ()


def test_ceiling_from_the_rules_file_and_its_errors():
    ruleset = _ruleset(ceiling={"share": 0.05, "window": "2m", "of": "fired"})
    assert ruleset.rules["block_everything"].ceiling == Ceiling(0.05, 120_000, "fired", 100)
    assert ruleset.rules["new_account"].ceiling is None  # the default applies: DEFAULT_CEILING
    with pytest.raises(RulesFileError, match="block_everything.ceiling.share"):
        _ruleset(ceiling={"share": 2})
    with pytest.raises(ValueError, match="window"):
        parse_ceiling({"window": "soon"}, "x", ValueError)
    assert DEFAULT_CEILING.share == 0.02 and DEFAULT_CEILING.window_ms == 300_000


class _Model:
    version = "m"

    def predict(self, X):
        return np.full(len(X), 0.02, dtype=np.float32)

    def contributions(self, X):
        return np.zeros((len(X), len(FEATURE_NAMES) + 1), dtype=np.float32)


def test_a_shadowed_rule_is_recorded_but_changes_no_verdict():
    ruleset = _ruleset()
    features = [{n: 0.0 for n in FEATURE_NAMES} | {"quantity": 1.0}]
    p = [purchase(1, occurred_at=T0)]
    enforced = decide_batch(p, features, _Model(), ruleset, Blocked(), T0)[0]
    assert enforced.decision["decision"] == "BLOCKED" and enforced.blocked_by == ("block_everything",)
    shadowed = decide_batch(p, features, _Model(), ruleset, Blocked(), T0,
                            shadowed={"block_everything"})[0]
    without = decide_batch(p, features, _Model(), _ruleset(enabled=False), Blocked(), T0)[0]
    assert shadowed.decision["decision"] == without.decision["decision"] != "BLOCKED"
    assert shadowed.decision["rule_score"] == pytest.approx(without.decision["rule_score"])
    reason = next(r for r in shadowed.decision["reasons"] if r["code"] == "block_everything")
    assert reason["detail"].startswith("[shadow] ") and "block_everything" not in shadowed.fired
    assert not any(e["kind"] == "blocklist_hit" for e in shadowed.security_events)


def _recount(batches, ceilings, rule_id, now_ms):
    """What a rule's window holds, counted again from every batch (the definition)."""
    ceiling = ceilings.get(rule_id, DEFAULT_CEILING)
    inside = [(n, hits) for at, n, hits in batches if at > now_ms - ceiling.window_ms]
    count = sum(hits.get(rule_id, (0, 0))[ceiling.of == "blocked"] for _, hits in inside)
    return count, sum(n for n, _ in inside)


def test_running_totals_trip_exactly_when_a_recount_of_the_window_would():
    import random

    rng = random.Random(7)
    rules = ["a", "b", "c", "d"]
    ceilings = {"a": Ceiling(0.1, 2_000, "fired", 20), "b": Ceiling(0.05, 7_000, "blocked", 10),
                "c": Ceiling(0.2, 300_000, "fired", 50)}
    breaker, history, shadowed, now, tripped = RuleBreaker(ceilings), [], set(), 0, 0
    for step in range(3_000):
        now += rng.choice([0, 1, 5, 40, 400])
        if step == 1_500:  # a new rules version: other windows
            ceilings = {"a": Ceiling(0.1, 9_000, "fired", 20), "d": Ceiling(0.3, 1_000, "fired", 5)}
            breaker.ceilings = ceilings
        outcomes = []
        for _ in range(rng.randint(0, 6)):
            fired = tuple(r for r in rules if rng.random() < 0.08)
            outcomes.append((fired, tuple(r for r in fired if rng.random() < 0.5)))
        hits = {}
        for fired, blocked in outcomes:
            for r in fired:
                f, b = hits.get(r, (0, 0))
                hits[r] = (f + 1, b + (r in blocked))
        history.append((now, len(outcomes), hits))
        longest = max([c.window_ms for c in ceilings.values()] + [DEFAULT_CEILING.window_ms])
        history = [h for h in history if h[0] > now - longest]
        trips = {t.rule_id: (t.hits, t.purchases) for t in breaker.observe(now, outcomes, shadowed)}
        expected = {}
        for r in set(rules) - shadowed:
            count, purchases = _recount(history, ceilings, r, now)
            c = ceilings.get(r, DEFAULT_CEILING)
            if purchases >= c.min_purchases and count > c.share * purchases:
                expected[r] = (count, purchases)
        assert trips == expected, step
        tripped += len(trips)
        for r in trips:  # the watch shadows a tripped rule and forgets its counts
            shadowed.add(r)
            breaker.forget({r})
            for _, _, h in history:
                h.pop(r, None)
        if rng.random() < 0.01 and shadowed:
            shadowed.discard(rng.choice(sorted(shadowed)))  # re-enabled: starts afresh
    assert tripped >= 10  # the sequence does trip rules, in both rules versions
