"""The native crowd read (``CrowdReader.read``, ``processors/native/src/crowd_read.rs``: what
``processors.crowd.crowd_read`` is) on the values the simulator never sends: every key and
both stateless features equal the f-strings and steps of ``tests/support/crowd_reference.py``
for shows, BINs and quantities that are not strs or ints, str subclasses, countries outside
ASCII, records and geo points that are mappings but not dicts; its errors are Python's; a
``CrowdRead`` built of its parts reads back as given, and the reader refuses an ``IpInfo`` of
another layout."""

from __future__ import annotations

from collections import UserDict
from decimal import Decimal

import pytest

from processors import crowd
from processors.crowd import KINDS, CrowdRead, crowd_read, price_band
from processors.money import unit_price_ref
from processors.netinfo import IpInfo, ip_info, ua_family
from processors.signals import MISSING
from tests.support import crowd_reference
from tests.unit.test_processors_crowd import T0, purchase

pytestmark = pytest.mark.unit


class Text(str):
    """A str subclass that formats differently from its value (what an f-string calls)."""

    def __format__(self, spec: str) -> str:
        return f"<{str(self)}>"


def former(p) -> tuple[tuple[str | None, ...], tuple[float, float]]:
    keyed = crowd_reference.crowd_keyed(p)
    return tuple(keyed.get(kind) for kind in KINDS), crowd_reference.stateless(p)


def read_of(p, unit: int | None = None) -> tuple[tuple[str | None, ...], tuple[float, float]]:
    read = crowd_read(p, unit)
    return read.keys, (read.asn_hosting, read.ip_country_mismatch)


ODD = [
    {"show_id": 42},
    {"show_id": Text("show7")},
    {"show_id": Decimal("1.50")},
    {"show_id": "sh\u00f6w"},
    {"card_bin": 411111},
    {"card_bin": Text("550000")},
    {"card_bin": 0},
    {"quantity": True},
    {"quantity": "3"},
    {"quantity": 2**70},
    {"quantity": -3},
    {"quantity": -(2**63)},
    {"quantity": 2**63 - 1},
    {"quantity": 0},
    {"quantity": 2.9},
    {"unit_price_minor": 2**62},
    {"geo": {"country": "de"}, "ip": "24.5.6.7"},
    {"geo": {"country": "\u00fcs"}, "ip": "24.5.6.7"},  # upper-cased by Python's str.upper
    {"geo": {"country": "stra\u00dfe"}, "ip": "24.5.6.7"},
    {"geo": {"country": 7}, "ip": "24.5.6.7"},
    {"geo": UserDict({"country": "us"}), "ip": "24.5.6.7"},
    {"geo": {"lat": 1.0}, "card_country": "us"},
    {"geo": None, "card_country": Text("us")},
    {"geo": {}, "card_country": ""},
    {"ip": "10.0.0.1"},
    {"ip": "2a01:4f8::1", "card_country": "DE"},
    {"ip": None},
    {"user_agent": "curl/8.4.0"},
    {"user_agent": None},
]


@pytest.mark.parametrize("over", ODD, ids=[repr(o) for o in ODD])
def test_odd_values_read_as_the_former_steps_read_them(over):
    p = purchase(3, T0, **over)
    want = former(p)
    assert read_of(p) == want
    assert read_of(UserDict(p)) == want  # a mapping that is not a dict: read by its methods
    assert read_of(p, unit_price_ref(p)) == want  # the unit price given


def test_a_unit_price_the_memo_does_not_hold_is_banded_by_price_band(monkeypatch):
    monkeypatch.setattr(crowd, "BANDS_MEMO_CAP", 1)  # every band past the first clears it
    for unit in (1, 7, 999_999, 1, 123_456_789):
        p = purchase(1, T0)
        assert crowd_read(p, unit).keys[:2] == (
            f"tier:show1:{price_band(p, unit)}",
            f"coord:show1:{price_band(p, unit)}:2",
        )


def test_errors_are_pythons():
    for field in ("show_id", "quantity"):
        p = purchase(1, T0)
        del p[field]
        with pytest.raises(KeyError, match=field):
            crowd_read(p)
    with pytest.raises(ValueError, match="invalid literal"):
        crowd_read(purchase(1, T0, quantity="three"))
    with pytest.raises(AttributeError):  # (geo or {}).get: a truthy geo without get
        crowd_read(purchase(1, T0, geo=[("country", "US")]))


def test_the_stateless_features_follow_the_ip_and_the_claimed_country():
    home = purchase(1, T0, ip="24.5.6.7", geo={"country": "us"})
    assert ip_info("24.5.6.7").country == "US"
    assert read_of(home)[1] == (0.0, 0.0)
    assert read_of({**home, "geo": {"country": "DE"}})[1] == (0.0, 1.0)
    assert read_of({**home, "geo": None, "card_country": None})[1] == (0.0, MISSING)
    assert read_of({**home, "ip": "10.0.0.1"})[1] == (MISSING, MISSING)
    cloud = crowd_read({**home, "ip": "52.1.2.3"})
    assert cloud.asn_hosting == 1.0 and cloud.keys[3] == f"asn:{ip_info('52.1.2.3').asn}"
    assert cloud.keys[5] == f"ua:{ua_family(home['user_agent'])}"


def test_a_read_made_of_its_parts_reads_back_as_given():
    keys = ("tier:a:1", "coord:a:1:2", None, "asn:X", None, "ua:none")
    read = CrowdRead(keys, MISSING, 1.0)
    assert read.keys == keys and type(read.keys) is tuple
    assert (read.asn_hosting, read.ip_country_mismatch) == (MISSING, 1.0)
    assert read == CrowdRead(keys, MISSING, 1.0) and read != CrowdRead(keys, MISSING, 0.0)
    assert read != keys
    assert "asn:X" in repr(read)
    with pytest.raises(TypeError):
        CrowdRead((None, *keys[1:]), 0.0, 0.0)  # a tier key is always there


def test_an_ip_info_of_another_layout_is_refused():
    from processors._native import CrowdReader

    fields = dict(ip_info=ip_info, ua_family=ua_family, price_band=price_band, bands={},
                  format=format, missing=MISSING)  # fmt: skip
    CrowdReader(ip_info_fields=IpInfo._fields, **fields)
    moved = (IpInfo._fields[1], IpInfo._fields[0], *IpInfo._fields[2:])
    with pytest.raises(ValueError, match="IpInfo fields"):
        CrowdReader(ip_info_fields=moved, **fields)


def test_read_purchase_is_read_order_then_crowd_read_of_its_unit_price():
    from processors.crowd import read_purchase
    from processors.records import read_order
    from processors.timeutil import to_ms
    from tests.unit.test_crowd_read import random_stream

    for p in random_stream(11, 400):
        o, read = read_purchase(p)
        assert type(o) is type(read_order(p)) and o == read_order(p)
        assert read == crowd_read(p, o.unit)
        assert read_purchase(p, to_ms(p["occurred_at"]))[0] == read_order(p)
    for field in ("show_id", "quantity", "unit_price_minor"):  # read_order's error, first
        p = purchase(1, T0)
        del p[field]
        with pytest.raises(KeyError, match=field):
            read_purchase(p)

    class Point:  # subscripted by read_order, without the get the crowd read calls
        def __getitem__(self, name: str) -> object:
            return {"lat": 1.0, "lon": 2.0, "country": "US"}[name]

    with pytest.raises(AttributeError, match="get"):  # the order read, then the crowd read's
        read_purchase(purchase(1, T0, geo=Point()))
