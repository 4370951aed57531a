"""The distinct-wallet and distinct-card counts of both native stores (counted one by one while
few, in a hash set beyond eight) are what a Python set of the rows in the window gives, at
every count from one to past the cap, each wallet and card seen once or many times: the
entity store's ``wallets_per_*_24h`` and ``linked_wallets`` against ``entity_rows``, the crowd
store's ``tier_wallets_10m``, ``net_wallets_1h``, ``bin_wallets_1h`` and ``bin_cards_1h``
against ``rows_of``. Counting stops at the cap (a count only grows): purchases packed as a
live shop's are, a thousand a second, fill every window past it."""

from __future__ import annotations

import random

import pytest

from processors.crowd import CROWD_FEATURES, CrowdRead, crowd_store
from processors.crowd_state import HOUR_MS, RECENT_MS, WALLETS_CAP
from processors.entity_state import ENTITY_WALLETS_CAP, apply_stores, entity_store
from processors.records import Order
from processors.timeutil import DAY_MS

pytestmark = pytest.mark.unit

T = 1_780_000_000_000
KEYS = ("tier:s:1", "coord:s:1:1", "net:1.2.3.0/24", None, "bin:411111", "ua:none")


def order(k: int, ts: int, wallet: str, card: str | None, ip: str, device: str) -> Order:
    return Order(ts=ts, ingested_ms=None, purchase_id=f"p{k}", wallet=wallet, show_id="s",
                 ticket_id=f"t{k}", channel="PRIMARY", quantity=1, amount=400 + k % 300,
                 unit=400, payment_method="CARD", card=card, ip=ip, device=device, geo=False,
                 lat=None, lon=None, country=None, sale_opens_ms=None, account_created_ms=None,
                 mfa_enabled=None, phone_verified=None, email_verified=None)  # fmt: skip


@pytest.mark.parametrize("seed", range(6))
def test_counts_are_set_counts_at_every_size(seed):
    check_counts(seed, max_step_ms=4 * 60_000)


@pytest.mark.parametrize("seed", range(3))
def test_counts_are_set_counts_when_every_window_is_full(seed):
    """A purchase a millisecond or two apart: every window holds hundreds of rows, the
    counts are past the cap, and counting stops there."""
    saturated = check_counts(seed, max_step_ms=2, wallet_counts=(90, 200), purchases=600)
    assert saturated > 300


def check_counts(seed: int, max_step_ms: int, wallet_counts=(3, 9, 12, 40, 90),
                 purchases: int = 400) -> int:
    """Purchases ``max_step_ms`` apart at most, each count checked against a Python set;
    how many purchases had the tier count at its cap."""
    rng = random.Random(seed)
    entities, crowds = entity_store(), crowd_store()
    read = CrowdRead(KEYS, 0.0, 0.0)
    wallets = [f"0x{n:040x}" for n in range(rng.choice(wallet_counts))]
    cards = [f"card{n}" for n in range(rng.choice([2, 9, 15, 80]))] + [None]
    ts, checked, saturated = T, 0, 0
    for k in range(purchases):
        ts += rng.randrange(0, max_step_ms)
        me, card = rng.choice(wallets), rng.choice(cards)
        o = order(k, ts, me, card, "1.2.3.4", rng.choice(["d1", "d2"]))
        row = dict(zip(("ip", "device", "card", "linked"), entities.entity_values(o), strict=True))
        sets = {}
        for kind, key in (("ip", o.ip), ("device", o.device), ("card", o.card)):
            rows = entities.entity_rows(kind, key) if key else None
            sets[kind] = {w for t, w in rows or () if ts - DAY_MS < t < ts} | {me}
            if key:
                want = float(min(len(sets[kind]), ENTITY_WALLETS_CAP))
                assert row[kind] == want, (k, kind)
        linked = sets["ip"] | sets["device"] | (sets["card"] if o.card else set())
        assert row["linked"] == float(min(len(linked), ENTITY_WALLETS_CAP)), k
        values = dict(zip(CROWD_FEATURES, crowds.values(read, me, ts, card), strict=True))

        def window(key, lo, ts=ts):
            return [r for r in crowds.rows_of(key) or () if lo < r[0] < ts]

        def count(texts):
            return float(min(len(set(texts)), WALLETS_CAP))

        tier, net, binned = (window(KEYS[0], ts - RECENT_MS), window(KEYS[2], ts - HOUR_MS),
                             window(KEYS[4], ts - HOUR_MS))  # fmt: skip
        assert values["tier_wallets_10m"] == count([r[1] for r in tier] + [me]), k
        saturated += values["tier_wallets_10m"] == WALLETS_CAP
        assert values["net_wallets_1h"] == count([r[1] for r in net] + [me]), k
        assert values["bin_wallets_1h"] == count([r[1] for r in binned] + [me]), k
        want_cards = [r[2] for r in binned if r[2]] + ([card] if card else [])
        assert values["bin_cards_1h"] == count(want_cards), k
        checked += len(linked) > 8 or len({r[1] for r in net}) > 8
        apply_stores(entities, crowds, o, read)
    assert checked or len(wallets) < 9  # past eight distinct wallets whenever there are
    return saturated
