"""The columnar decision path gives exactly what the per-row path it replaced gave
(``tests/support/legacy_path``), purchase for purchase:

- every feature value, every Decision record (verdict, scores, reasons, contributions,
  challenger score) and every security event, on a simulated week decided in batches of 500
  (as ``sentinel bench pipeline`` and replay run it) with blocklist hits, organizer
  thresholds, a challenger and cluster ids;
- the same on a denser simulation (few users buying often, much fraud and resale, travel),
  where wallet history, resale and geo features are exercised far more;
- the states left behind (wallets, IPs, devices, cards, shows) are equal too, so the next
  batch starts from the same place;
- events too late for their wallet are refused by both (and counted alike).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from models.registry import load_model
from models.rules_bench import sample_blocklists
from models.simulator import SimConfig, simulate
from processors.decide import Blocked, decide_batch
from processors.features import FEATURE_NAMES, FeatureEngine, LateEventError
from processors.rules import load_ruleset
from tests.support import legacy_path

pytestmark = [pytest.mark.unit, pytest.mark.slow]

BATCH = 500
DECIDED_AT = datetime(2025, 4, 1, tzinfo=UTC)


class Challenger:
    """The champion under another name: exercises the challenger columns."""

    version = "challenger-1"

    def __init__(self, model) -> None:
        self.model = model

    def predict(self, X):
        return self.model.predict(X) * 0.5


def _run(engine, process, late_error, decide, events, blocked) -> tuple[list, list, int]:
    """(features, outcomes, late events) of ``events`` decided in batches of ``BATCH``."""
    model, ruleset = load_model(), load_ruleset()
    features, outcomes, pending, late = [], [], [], 0

    def flush() -> None:
        if pending:
            purchases = [p for p, _ in pending]
            clusters = [f"cluster:{p['wallet']}" if i % 3 else None
                        for i, p in enumerate(purchases)]
            outcomes.extend(decide(purchases, [f for _, f in pending], model, ruleset, blocked,
                                   DECIDED_AT, challenger=Challenger(model), clusters=clusters))
            pending.clear()

    for kind, record in events:
        try:
            row = process(engine, kind, record)
        except late_error:
            late += 1
            continue
        if row is not None:
            features.append(row if isinstance(row, dict)
                            else dict(zip(FEATURE_NAMES, row, strict=True)))
            pending.append((record, row))
            if len(pending) == BATCH:
                flush()
    flush()
    return features, outcomes, late


def _compare(config: SimConfig) -> None:
    events = [e for e in simulate(config) if e[0] != "label"]
    purchases = [r for k, r in events if k == "purchase"]
    wallets, ips = sample_blocklists(purchases)
    blocked = Blocked(frozenset(wallets), frozenset(ips))
    old_engine, new_engine = legacy_path.FeatureEngine(), FeatureEngine()
    old = _run(old_engine, lambda e, k, r: e.process(k, r), legacy_path.LateEventError,
               legacy_path.decide_batch, events, blocked)
    new = _run(new_engine, lambda e, k, r: e.process_row(k, r), LateEventError,
               decide_batch, events, blocked)
    old_features, old_outcomes, old_late = old
    new_features, new_outcomes, new_late = new
    assert len(new_features) == len(old_features) > 1000
    for i, (a, b) in enumerate(zip(old_features, new_features, strict=True)):
        assert a == b, f"purchase {i}: features differ"
    for a, b in zip(old_outcomes, new_outcomes, strict=True):
        assert a.decision == b.decision
        assert a.security_events == b.security_events
    assert new_late == old_late
    verdicts = {o.decision["decision"] for o in new_outcomes}
    assert verdicts == {"APPROVED", "REQUIRE_2FA", "MANUAL_REVIEW", "BLOCKED"}
    assert any(o.security_events for o in new_outcomes)
    assert {k: w.to_dict() for k, w in old_engine.wallets.items()} == {
        k: w.to_dict() for k, w in new_engine.wallets.items()}
    store = new_engine.entities  # native: compared through its inspection methods
    for kind in ("ip", "device", "card"):
        old_states = getattr(old_engine, kind + "s")
        assert list(old_states) == store.keys(kind)  # same keys, same order of last use
        assert all(old_states[k].rows == store.entity_rows(kind, k) for k in old_states)
    assert list(old_engine.shows) == store.keys("show")
    for k, show in old_engine.shows.items():
        assert store.show(k) == {
            "primary_prices": show.primary_prices, "resale_prices": show.resale_prices,
            "sales": show.sales, "sale_open_ms": show.sale_open_ms, "tickets": show.tickets,
            "watermark_ms": show.watermark_ms}
    seen = old_engine.entities.seen
    assert store.sizes()["seen"] == len(seen) and all(map(store.has_seen, seen))


def test_a_simulated_week_is_decided_exactly_as_by_the_per_row_path():
    _compare(SimConfig(seed=11, days=7))


def test_a_dense_fraud_heavy_simulation_is_decided_exactly_as_by_the_per_row_path():
    _compare(SimConfig(seed=3, days=3, n_users=800, n_shows=20, purchase_rate=0.6,
                       fraud_rate=0.2, resale_share=0.4, list_share=0.4, travel_prob=0.2))


class FixedModel:
    """Every row scored ``score``: a model unsure enough that rules decide the review."""

    version = "fixed"

    def __init__(self, model, score: float) -> None:
        self.model, self.score = model, score

    def predict(self, X):
        return self.model.predict(X) * 0 + self.score

    def contributions(self, X):
        return self.model.contributions(X)


def test_on_sale_step_up_and_organizer_thresholds_are_applied_as_by_the_per_row_path():
    """Purchases inside their show's on-sale window, a model at 0.6: the rules send many to
    review, and those sent there by crowd rules alone step up to 2FA, in both paths."""
    events = [e for e in simulate(SimConfig(seed=5, days=2)) if e[0] != "label"]
    engine, rows = FeatureEngine(), []
    for kind, record in events:
        try:
            row = engine.process(kind, record)
        except LateEventError:
            continue
        if row is not None:
            rows.append((record, {**row, "secs_since_sale_open": 600.0, "before_sale_open": 0.0}))
    purchases, features = [p for p, _ in rows[:BATCH]], [f for _, f in rows[:BATCH]]
    model, ruleset = FixedModel(load_model(), 0.6), load_ruleset()
    old = legacy_path.decide_batch(purchases, features, model, ruleset, Blocked(), DECIDED_AT)
    new = decide_batch(purchases, features, model, ruleset, Blocked(), DECIDED_AT)
    assert [o.decision for o in old] == [o.decision for o in new]
    stepped = [o for o in new if o.decision["decision"] == "REQUIRE_2FA"
               and o.decision["score"] > ruleset.for_organizer(o.decision["organizer_id"])
               .thresholds.review]
    assert stepped and any(o.decision["decision"] == "MANUAL_REVIEW" for o in new)


def test_ip_info_reads_dotted_quads_as_ipaddress_does():
    """``netinfo.ip_info`` parses plain IPv4 itself: the same answer as the former
    ``ipaddress`` parse for every address, special ranges and malformed spellings included."""
    import random

    from processors.netinfo import ip_info
    from tests.support.legacy_path.netinfo import ip_info as former

    odd = ["1.2.3.4", "010.1.1.1", "1.2.3", "256.1.1.1", "0.0.0.0", "255.255.255.255",
           "192.0.0.170", "192.0.0.9", "100.64.1.1", "10.0.0.1", "1.2.3.4 ", "\u0663.1.1.1",
           "1.2.3.04", "00.1.2.3", "1.1.1.1\n", "2001:db8::1", "::ffff:8.8.8.8", "", None, "x"]
    rng = random.Random(7)
    spread = [".".join(str(rng.randrange(256)) for _ in range(4)) for _ in range(2000)]
    assert [ip_info(ip) for ip in odd + spread] == [former(ip) for ip in odd + spread]


def test_a_crowd_keys_pace_is_recounted_when_an_hour_it_counted_changes():
    """A key's pace is the sum over the hours it keeps: a late row in an hour already
    counted counts, and hours pruned as the floor moves on do not."""
    from processors.crowd_state import HOUR_MS, crowd_store

    store, hour = crowd_store(), 1_000

    def add(pid: str, ts: int) -> None:
        store.apply_row(pid, (ts, "w", "", 0), ["k"])

    for h in range(hour - 30, hour + 1):
        add(f"p{h}", h * HOUR_MS + 1)
    assert store.hourly_before("k", hour, 24) == 24
    add("late", (hour - 3) * HOUR_MS + 5)
    assert store.hourly_before("k", hour, 24) == 25
    add("next", (hour + 1) * HOUR_MS)  # prunes the hours before hour - 25: none it counted
    assert store.hourly_before("k", hour, 24) == 25
    add("ahead", (hour + 10) * HOUR_MS)  # prunes the hours before hour - 16
    assert store.hourly_before("k", hour, 24) == 16 + 1
    assert store.hourly_before("absent", hour, 24) is None
