"""``crowd_read`` names a purchase's crowd keys (a tuple in ``KINDS`` order, None where a kind
is absent) and its two stateless crowd features from one ``ip_info``; ``CrowdStore.apply_order``
takes those keys with the order (its row made natively) and ``CrowdStore.values`` the whole
read. Held to what came before (``tests/support/crowd_reference.py``: ``crowd_keyed``'s dict,
the features ``crowd_values`` computed from a second lookup, ``order_crowd_row``) on random purchases with and without IP, card BIN, user agent,
geo and card country, IPv4, IPv6, private and malformed IPs, many shows, prices, currencies
and quantities:

- the keys and the two stateless features are the former ones, with the order's unit price
  or without it;
- a store applied each order with the read's keys holds exactly what a store applied the
  former row and list of keys holds, and one applied ``crowd_row`` of the purchase (the same
  keys, rows and hourly counts), redeliveries, late rows and small amounts included; a store
  built for another ``Order`` layout is refused;
- ``crowd_values`` reads, before each purchase is applied, the values the store's rows and
  hours say (recomputed here from ``rows_of`` and ``hourly_before``, as the module documents
  them) with the stateless features in their ``CROWD_FEATURES`` places;
- ``FeatureEngine`` rows equal those of the engine as it read crowds before
  (``tests/support/engine_reference.py`` with the former keys and features spliced in).
"""

from __future__ import annotations

import random
import re
from datetime import timedelta

import pytest

from processors.crowd import (
    CROWD_FEATURES,
    KINDS,
    CrowdRead,
    crowd_read,
    crowd_row,
    crowd_store,
    crowd_values,
)
from processors.crowd_state import HOUR_MS, PACE_HOURS, RECENT_MS, WALLETS_CAP
from processors.money import unit_price_ref
from processors.records import read_order
from processors.signals import MISSING
from processors.timeutil import to_ms
from tests.support import crowd_reference
from tests.unit.test_processors_crowd import CHROME, T0, purchase

pytestmark = pytest.mark.unit

IPS = [
    "24.5.6.7",
    "24.5.6.200",
    "52.1.2.3",
    "52.1.2.99",
    "88.107.182.1",
    "88.107.182.200",
    "8.8.8.8",
    "1.1.1.1",
    "185.220.101.4",
    "2a01:4f8::1",
    "2a01:4f8::2:1",
    "2001:4860::8888",
    "2001:db8::1",
    "::1",
    "10.0.0.1",
    "192.168.1.20",
    "127.0.0.1",
    "100.64.0.1",
    "nope",
    "",
    "1.2.3",
    "01.2.3.4",
    "256.1.1.1",
    "1.2.3.4.5",
    " 1.2.3.4",
    "::ffff:1.2.3.4",
    None,
]
AGENTS = [
    CHROME,
    "curl/8.4.0",
    "python-requests/2.31",
    "",
    None,
    "Mozilla/5.0 (iPhone; CPU "
    "iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1",
]
ABSENT = object()  # the field left out of the record


def random_purchase(rng: random.Random, k: int, at) -> dict:
    """A purchase ``read_order`` accepts, its crowd inputs drawn from every case."""
    country = rng.choice(["US", "de", "FR", "", None])
    over = {
        "show_id": f"show{rng.randrange(30)}",
        "quantity": rng.randint(1, 6),
        "unit_price_minor": rng.choice(
            [0, 1, 300, 499, 500, 6500, 6501, 12_000, rng.randrange(1, 2_000_000)]
        ),
        "currency": rng.choice(["USD", "USD", "EUR", "JPY", "GBP"]),
        "wallet": f"0x{rng.randrange(60):040x}",
        "card_fingerprint": rng.choice([None, "", *(f"card{n}" for n in range(25))]),
        "ip": rng.choice(
            IPS
            + [
                f"{rng.randrange(1, 224)}.{rng.randrange(256)}."
                f"{rng.randrange(256)}.{rng.randrange(256)}"
            ]
            * 8
        ),
        "card_bin": rng.choice([None, "", "411111", "550000", "378282", str(rng.randrange(10**6))]),
        "user_agent": rng.choice(AGENTS),
        "geo": rng.choice([None, {}, {"lat": 48.1, "lon": 11.6, "country": country}]),
        "card_country": rng.choice(["US", "de", "", None]),
    }
    p = purchase(k, at, **over)
    for field in ("ip", "card_bin", "user_agent", "geo", "card_country"):
        if field != "ip" and rng.random() < 0.05:  # read_order needs the ip field itself
            del p[field]
    return p


def random_stream(seed: int, n: int) -> list[dict]:
    """``n`` purchases over about two days, a few out of order and a few redelivered."""
    rng, at, out = random.Random(seed), T0, []
    for k in range(n):
        at += timedelta(seconds=rng.expovariate(1 / 40))
        late = timedelta(minutes=rng.choice([0] * 20 + [3, 30, 90]))
        out.append(random_purchase(rng, k, at - late))
        if rng.random() < 0.02:
            out.append(out[rng.randrange(len(out))])  # a redelivery
    return out


def former(p: dict) -> tuple[tuple[str | None, ...], tuple[float, float]]:
    keyed = crowd_reference.crowd_keyed(p)
    return tuple(keyed.get(kind) for kind in KINDS), crowd_reference.stateless(p)


@pytest.mark.parametrize("seed", [1, 2])
def test_the_keys_and_stateless_features_are_the_former_ones(seed):
    stream = random_stream(seed, 1500)
    assert {p.get("ip") for p in stream} >= set(IPS) - {None}
    for p in stream:
        keys, stateless = former(p)
        for read in (crowd_read(p), crowd_read(p, unit_price_ref(p))):
            assert type(read) is CrowdRead and type(read.keys) is tuple
            assert (read.keys, (read.asn_hosting, read.ip_country_mismatch)) == (keys, stateless)
        present = list(crowd_reference.crowd_keyed(p).values())
        assert [k for k in read.keys if k is not None] == present  # same keys, same order
    kinds = [sum(former(p)[0][i] is not None for p in stream) for i in range(len(KINDS))]
    assert 0 < min(kinds) and min(kinds[2:5]) < len(stream)  # every kind present and absent


def test_missing_inputs_read_as_before():
    bare = purchase(1, T0)
    for field in ("ip", "card_bin", "user_agent", "geo", "card_country"):
        del bare[field]
    for p in (
        bare,
        purchase(2, T0, ip="10.1.2.3", card_bin="", user_agent="", geo={}),
        purchase(3, T0, ip="2001:db8::1", geo={"country": None}, card_country="de"),
    ):
        read = crowd_read(p)
        assert (read.keys, (read.asn_hosting, read.ip_country_mismatch)) == former(p)
    assert crowd_read(bare).keys[2:5] == (None, None, None)


def expected_values(store, read: CrowdRead, me: str, ts: int, card: str | None) -> tuple:
    """``CROWD_FEATURES`` as ``processors.crowd`` documents them, from the store's rows and
    hourly counts (``rows_of``, ``hourly_before``)."""

    def rows(key, lo):
        return [r for r in store.rows_of(key) or () if lo < r[0] < ts] if key else []

    def wallets(key, lo):
        return float(min(len({r[1] for r in rows(key, lo)} | {me}), WALLETS_CAP))

    def rate(key):
        if key is None:
            return MISSING
        if key not in store:
            return 1.0
        normal = store.hourly_before(key, ts // HOUR_MS, PACE_HOURS)
        return (len(rows(key, ts - RECENT_MS)) + 1) / (normal / (PACE_HOURS * 6) + 1)

    tier, coord, net, asn, card_bin, ua = read.keys
    binned = rows(card_bin, ts - HOUR_MS)
    cards = {r[2] for r in binned if r[2]} | ({card} if card else set())
    return (
        wallets(tier, ts - RECENT_MS),
        rate(tier),
        wallets(coord, ts - RECENT_MS),
        wallets(net, ts - HOUR_MS) if net else MISSING,
        rate(asn),
        read.asn_hosting,
        read.ip_country_mismatch,
        wallets(card_bin, ts - HOUR_MS) if card_bin else MISSING,
        float(min(len(cards), WALLETS_CAP)) if card_bin else MISSING,
        float(sum(r[3] for r in binned)) if card_bin else MISSING,
        rate(ua),
    )


def contents(store, keys: set[str]) -> dict:
    """What ``store`` holds under ``keys``: rows and the last day's hourly counts."""
    return {
        key: (
            store.rows_of(key),
            [store.hourly_before(key, h, 1) for h in range(T0_HOUR - 2, T0_HOUR + 60)],
        )
        for key in keys
    }


T0_HOUR = int(T0.timestamp() * 1000) // HOUR_MS


@pytest.mark.parametrize("seed", [3, 4])
def test_a_store_applied_the_read_holds_and_answers_what_the_former_keys_give(seed):
    stream = random_stream(seed, 2500)
    new, old, by_row, seen = crowd_store(), crowd_store(), crowd_store(), set()
    checked = 0
    for i, p in enumerate(stream):
        ts = to_ms(p["occurred_at"])
        assert ts is not None
        read = crowd_read(p)
        got = crowd_values(p, new, ts, read)
        assert got == expected_values(new, read, p["wallet"], ts, p.get("card_fingerprint")), i
        assert got == crowd_values(p, new, ts), i  # reading it again gives the same
        assert len(got) == len(CROWD_FEATURES)
        checked += any(v not in (MISSING, 1.0, 0.0) for v in got[:5] + got[7:])
        o = read_order(p)
        new.apply_order(o, read)
        old.apply_row(
            o.purchase_id,
            crowd_reference.order_crowd_row(o),
            list(crowd_reference.crowd_keyed(p).values()),
        )
        by_row.apply_row(p["purchase_id"], crowd_row(p, ts), read.keys)
        seen.update(k for k in read.keys if k)
        if i % 250 == 0 or i == len(stream) - 1:
            assert len(new) == len(old) and new.sizes() == old.sizes(), i
            assert contents(new, seen) == contents(old, seen) == contents(by_row, seen), i
    assert checked > len(stream) // 3  # crowds were seen, not only empty stores
    assert 0 < len(new) < len(seen)  # the sweep dropped idle keys from both


def test_values_of_an_absent_store_are_those_of_an_empty_one():
    for p in random_stream(5, 300):
        ts = to_ms(p["occurred_at"])
        read = crowd_read(p)
        assert crowd_values(p, None, ts, read) == crowd_values(p, crowd_store(), ts, read)
        assert crowd_values(p, None, ts, read) == expected_values(
            crowd_store(), read, p["wallet"], ts, p.get("card_fingerprint")
        )


def test_the_engine_rows_are_those_of_the_former_crowd_glue(monkeypatch):
    """``FeatureEngine`` over the random stream: every row equal to the reference engine's
    whose crowd read is rebuilt from the former keys and features (``former``)."""
    from processors.features import FeatureEngine, LateEventError
    from tests.support import engine_reference

    def former_read(p, unit_ref=None):
        keys, (hosting, mismatch) = former(p)
        return CrowdRead(keys, hosting, mismatch)

    monkeypatch.setattr(engine_reference, "crowd_read", former_read)
    old, new = engine_reference.ReferenceEngine(), FeatureEngine()
    rows = 0
    for i, p in enumerate(random_stream(6, 2000)):
        p = {**p, "ip": p.get("ip") or "nope"}  # the entity store needs an IP text
        if p.get("geo") and not p["geo"]["country"]:  # and a wallet's geo point a country
            p["geo"] = None
        try:
            want = old.process_row("purchase", p)
        except LateEventError as late:
            with pytest.raises(LateEventError, match=re.escape(str(late))):
                new.process_row("purchase", p)
            continue
        assert new.process_row("purchase", p) == want, i
        rows += 1
    assert rows > 1500


def test_a_purchase_without_a_show_or_quantity_raises_as_before():
    for field in ("show_id", "quantity"):
        p = purchase(1, T0)
        del p[field]
        with pytest.raises(KeyError, match=field):
            crowd_reference.crowd_keyed(p)
        with pytest.raises(KeyError, match=field):
            crowd_read(p)


def test_a_store_for_another_order_layout_is_refused():
    from processors import crowd_state
    from processors.crowd_state import CrowdStore
    from processors.records import Order

    limits = {
        name.lower(): getattr(crowd_state, name)
        for name in (
            "ROWS_RETENTION_MS",
            "ROWS_CAP",
            "HOURS_KEPT",
            "PRUNE_EVERY_MS",
            "SEEN_RETENTION_MS",
            "IDLE_MS",
            "HOUR_MS",
            "RECENT_MS",
            "WALLETS_CAP",
            "PACE_HOURS",
        )
    }
    CrowdStore(**limits, small_amount_minor=500, order_fields=Order._fields)
    moved = (Order._fields[1], Order._fields[0], *Order._fields[2:])
    with pytest.raises(ValueError, match="Order fields"):
        CrowdStore(**limits, small_amount_minor=500, order_fields=moved)
