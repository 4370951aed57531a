"""The native IPv4 GeoIP lookup (``processors._native.GeoIp4``, built by
``processors.geoip_tables.ipv4_lookup``, used by ``processors.netinfo.ip_info`` through
``_geo4``) answers (country, AS name) exactly as geoip2fast's ``lookup`` read by ``_geo`` does:
on every network start and end of both tables and the addresses either side, and on random
addresses; and how it reads a table, on small ones made here."""

from __future__ import annotations

import random
from array import array
from ipaddress import IPv4Address

import geoip2fast
import pytest

from processors import geoip_tables
from processors._native import GeoIp4
from processors.netinfo import _geo, _geo4, _geoip, _geoip_tables

pytestmark = pytest.mark.unit
V4_END = 1 << 32


def dotted(value: int) -> str:
    return f"{value >> 24}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"


def geoip2fast_answer(value: int) -> tuple[str | None, str | None]:
    return _geo(_geoip().lookup(dotted(value)))


def edges(starts, prefixes) -> set[int]:
    """Every network's first and last address and the addresses either side, in IPv4."""
    found: set[int] = set()
    for start, prefix in zip(starts, prefixes, strict=True):
        if start < V4_END:
            last = start + (1 << (32 - prefix)) - 1
            found.update((start - 1, start, start + 1, last - 1, last, last + 1))
    return {v for v in found if 0 <= v < V4_END}


def flat(chunks) -> list[int]:
    return [n for chunk in chunks for n in chunk]


def native():
    lookup = _geo4()
    assert isinstance(lookup.__self__, GeoIp4)  # geoip2fast 1.2.2: the native one
    return lookup


@pytest.mark.slow
def test_every_network_edge_of_both_tables_answers_as_geoip2fast():
    tables, lookup = _geoip_tables(), native()
    values = edges(flat(tables.mainListFirstIP), flat(tables.mainListNetlength))
    values |= edges(flat(tables.mainListFirstIPASN), flat(tables.mainListNetlengthASN))
    assert len(values) > 2_000_000 and {0, V4_END - 1} <= values
    wrong = [v for v in sorted(values) if lookup(v) != geoip2fast_answer(v)]
    assert wrong == []


def test_random_addresses_answer_as_geoip2fast():
    rng, lookup = random.Random(5), native()
    values = [rng.getrandbits(32) for _ in range(100_000)]
    values += [v for v in range(0, V4_END, 1 << 20)]  # a grid across the space
    assert [lookup(v) for v in values] == [geoip2fast_answer(v) for v in values]
    sizes = lookup.__self__.sizes()
    assert sizes[0] > 400_000 and sizes[1] > 400_000


def test_answers_are_strings_held_once_not_made_a_lookup():
    lookup = native()
    value = int(IPv4Address("8.8.8.8"))
    assert lookup(value) == ("US", "GOOGLE")
    assert all(a is b for a, b in zip(lookup(value), lookup(value), strict=True))


def test_another_geoip2fast_version_keeps_geoip2fast_lookup(monkeypatch):
    assert geoip_tables.ipv4_lookup(_geoip_tables(), _geoip(), "9.9.9") is None
    assert geoip2fast.__version__ in geoip_tables.KNOWN_VERSIONS
    rng = random.Random(6)
    values = [rng.getrandbits(32) for _ in range(2_000)]
    monkeypatch.setattr(geoip2fast, "__version__", "9.9.9")
    _geo4.cache_clear()
    try:
        fallback = _geo4()
        assert not isinstance(getattr(fallback, "__self__", None), GeoIp4)
        assert [fallback(v) for v in values] == [geoip2fast_answer(v) for v in values]
    finally:
        _geo4.cache_clear()
    monkeypatch.undo()
    assert [native()(v) for v in values] == [geoip2fast_answer(v) for v in values]


def table(**given):
    """A small GeoIp4: country networks 0.0.0.0/1 (id 16, "AA") and 128.0.0.0/2 (id 17, "ASIA",
    not two letters: None), none from 192.0.0.0 to the end; AS networks from 0.0.0.0 (id 1) and
    100.0.0.0 (id 2, an empty name: None), their ends not asked (as geoip2fast with IPv6
    data)."""
    tables = {
        "starts": array("I", [0, 2 << 30]).tobytes(),
        "prefixes": bytes([1, 2]),
        "ids": array("H", [16, 17]).tobytes(),
        "countries": [None] * 16 + ["AA", None],
        "not_found": "--",
        "asn_starts": array("I", [0, 100 << 24]).tobytes(),
        "asn_ids": array("I", [1, 2]).tobytes(),
        "asn_names": ["<unknown>", "ONE", None],
    }
    return GeoIp4(**{**tables, **given})


def test_an_address_in_no_country_network_is_not_found_and_one_between_as_networks_takes_the_one_before():  # noqa: E501
    geo = table()
    assert geo.lookup(0) == ("AA", "ONE")
    assert geo.lookup((1 << 31) - 1) == ("AA", None)  # AS 100/8's name is empty
    assert geo.lookup(50 << 24) == ("AA", "ONE")  # past AS 0/8's end: still its name
    assert geo.lookup(2 << 30) == (None, None)  # "ASIA"
    assert geo.lookup((3 << 30) - 1) == (None, None)
    assert geo.lookup(3 << 30) == ("--", None)  # no country network: no AS either
    assert geo.lookup(V4_END - 1) == ("--", None)
    assert geo.sizes() == (2, 2)
    with pytest.raises(OverflowError):
        geo.lookup(V4_END)


@pytest.mark.parametrize(("given", "message"), [
    ({"starts": array("I", [1, 2 << 30]).tobytes()}, "start at 0"),
    ({"asn_starts": array("I", [0, 100 << 24, 5]).tobytes(),
      "asn_ids": array("I", [1, 2, 1]).tobytes()}, "sorted"),
    ({"ids": array("H", [16, 18]).tobytes()}, "past the names"),
    ({"asn_ids": array("I", [1]).tobytes()}, "one id a network"),
    ({"prefixes": bytes([1, 33])}, "prefix length"),
    ({"starts": b"\0\0\0\0\0"}, "whole number"),
    ({"countries": [None] * 16 + ["AA", b"BB"]}, "str or None"),
])  # fmt: skip
def test_a_table_it_cannot_read_as_geoip2fast_does_is_refused(given, message):
    with pytest.raises(ValueError, match=message):
        table(**given)
