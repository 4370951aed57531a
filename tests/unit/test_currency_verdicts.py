"""The same basket gets the same verdict in any currency: features and rules see amounts in
the reference currency, through the production decision path (replay + decide_batch)."""

from __future__ import annotations

import pytest

from models.registry import DEFAULT_DIR, load_model
from models.replay import replay
from models.simulator import SimConfig, simulate
from processors.money import default_rates
from processors.rules import load_ruleset

pytestmark = pytest.mark.unit

CURRENCIES = ("MXN", "BRL", "JPY", "EUR", "GBP", "USD")


def _repriced(events: list[tuple[str, dict]], pick) -> list[tuple[str, dict]]:
    """Every purchase's unit price restated in the currency ``pick(index)`` chooses."""
    rates, out, n = default_rates(), [], 0
    for kind, record in events:
        if kind == "purchase":
            ref = rates.to_ref_minor(record["unit_price_minor"], record["currency"])
            currency = pick(n)
            n += 1
            record = {**record, "currency": currency,
                      "unit_price_minor": rates.from_ref_minor(ref, currency)}
        out.append((kind, record))
    return out


def test_mixed_currency_traffic_gets_the_same_verdicts():
    events = [e for e in simulate(SimConfig(seed=21, days=3, n_users=5000, n_shows=30,
                                            fraud_rate=0.05)) if e[0] != "label"]
    model, rules = load_model(root=DEFAULT_DIR), load_ruleset()
    in_usd = replay(_repriced(events, lambda i: "USD"), model, rules)
    mixed = replay(_repriced(events, lambda i: CURRENCIES[i % len(CURRENCIES)]), model, rules)
    assert len(in_usd) == len(mixed) > 1200
    for a, b in zip(in_usd, mixed, strict=True):
        assert a["purchase_id"] == b["purchase_id"]
        assert a["decision"] == b["decision"], (a["purchase_id"], a["reasons"], b["reasons"])
        # converted back and forth: within a cent per ticket of rounding
        assert abs(a["features"]["amount_minor"] - b["features"]["amount_minor"]) <= 2 * max(
            1, a["features"]["quantity"])
    assert sum(d["decision"] != "APPROVED" for d in mixed) > 50  # the verdicts are not trivial
