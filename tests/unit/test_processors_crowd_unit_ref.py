"""``crowd_read`` given the order's unit price (``Order.unit``) names the keys, of the same
kinds, that it names reading the price itself: with ``price_band``'s memo cold, warm, and
cleared when full."""

from __future__ import annotations

import pytest

from processors import crowd
from processors.crowd import KINDS, crowd_read, price_band
from processors.money import unit_price_ref
from processors.records import read_order
from tests.unit.test_processors_crowd import T0, purchase

pytestmark = pytest.mark.unit


def reference(p: dict) -> dict[str, str]:
    """The keys by kind as ``crowd_keyed`` (``crowd_read``'s forerunner) first named them
    (the band from the purchase's price)."""
    from processors.netinfo import ip_info, ua_family

    show, band = p["show_id"], price_band(p)
    info = ip_info(p.get("ip"))
    keys = {"tier": f"tier:{show}:{band}", "coord": f"coord:{show}:{band}:{int(p['quantity'])}"}
    if info.network:
        keys["net"] = f"net:{info.network}"
    if info.asn:
        keys["asn"] = f"asn:{info.asn}"
    if p.get("card_bin"):
        keys["bin"] = f"bin:{p['card_bin']}"
    keys["ua"] = f"ua:{ua_family(p.get('user_agent'))}"
    return keys


def items() -> list[dict]:
    from models.simulator import SimConfig, simulate

    simulated = [r for k, r in simulate(SimConfig(seed=5, days=1)) if k == "purchase"][:300]
    edges = [
        purchase(1, T0, ip=None, card_bin=None, user_agent=None),
        purchase(2, T0, ip="10.1.2.3", card_bin="", unit_price_minor=1),
        purchase(3, T0, ip="2001:db8::1", unit_price_minor=0, quantity=5),
        purchase(4, T0, unit_price_minor=123_457, currency="JPY"),
    ]
    return simulated + edges


@pytest.mark.parametrize("memo", ["cold", "warm", "full"])
def test_keys_given_the_unit_price_are_those_read_from_the_purchase(monkeypatch, memo):
    ps = items()
    monkeypatch.setattr(crowd, "_BANDS", {})
    if memo == "warm":
        for p in ps:
            price_band(p)
    if memo == "full":  # every call past the first clears the memo and fills it again
        monkeypatch.setattr(crowd, "BANDS_MEMO_CAP", 1)
    for p in ps:
        named = reference(p)
        want = tuple(named.get(kind) for kind in KINDS)
        unit = read_order(p).unit
        assert unit == unit_price_ref(p)
        assert crowd_read(p, unit).keys == want
        assert crowd_read(p).keys == want
        assert [k for k in want if k is not None] == list(named.values())  # none lost


def test_a_purchase_without_a_show_raises_before_its_price_is_read():
    p = purchase(1, T0, currency="XAF")
    del p["show_id"]
    with pytest.raises(KeyError, match="show_id"):
        crowd_read(p)
