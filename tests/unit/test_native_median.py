"""A show's median price (what ``price_deviation`` and a resale's fallback ``resale_markup``
divide by), found natively without sorting all the prices, is ``statistics.median`` of the
latest ``SHOW_PRICES_CAP`` prices of the channel in the 7 days before the purchase (the rows
``EntityStore.show`` holds): odd and even counts, repeated prices, fewer and more prices than
the cap, both channels."""

from __future__ import annotations

import random
import statistics

import pytest

from processors.entity_state import SHOW_PRICES_CAP, SHOW_RETENTION_MS, entity_store
from processors.records import Order
from processors.signals import MISSING

pytestmark = pytest.mark.unit

T = 1_780_000_000_000


def order(k: int, ts: int, channel: str, unit: int) -> Order:
    return Order(ts=ts, ingested_ms=None, purchase_id=f"p{k}", wallet=f"w{k % 7}", show_id="s",
                 ticket_id=f"t{k}", channel=channel, quantity=1, amount=unit, unit=unit,
                 payment_method="CARD", card=None, ip="1.2.3.4", device=None, geo=False,
                 lat=None, lon=None, country=None, sale_opens_ms=None, account_created_ms=None,
                 mfa_enabled=None, phone_verified=None, email_verified=None)  # fmt: skip


@pytest.mark.parametrize("seed", range(4))
def test_the_median_is_statistics_median_of_the_latest_prices(seed):
    rng = random.Random(seed)
    store, ts, checked = entity_store(), T, 0
    prices = [rng.randrange(1, 50_000) for _ in range(rng.choice([3, 12, 200]))]
    for k in range(300):
        ts += rng.choice([0, 1, 60_000, 3_600_000])
        channel = rng.choice(["PRIMARY", "PRIMARY", "RESALE"])
        o = order(k, ts, channel, rng.choice(prices))
        deviation = store.show_values(o)[0]
        show = store.show("s")
        rows = show[f"{channel.lower()}_prices"] if show else []
        window = [p for t, p in rows if ts - SHOW_RETENTION_MS < t < ts][-SHOW_PRICES_CAP:]
        if not window:
            assert deviation == MISSING, k
        else:
            median = statistics.median(window)
            assert deviation == (o.unit / median if median else MISSING), k
            checked += len(window) % 2 == 0
        store.apply_order(o)
    assert checked > 20  # even counts (the two middle prices) were compared
