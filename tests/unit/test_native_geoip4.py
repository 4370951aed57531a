"""The native IPv4 GeoIP lookup (``processors._native.GeoIp4``, built by
``processors.geoip_tables.ipv4_lookup``, used by ``processors.netinfo`` through ``_geo4``)
answers (country, AS name) exactly as geoip2fast's ``lookup`` read by ``_geo`` does: on every
network start and end of both tables and the addresses either side, and on random addresses;
and how it reads a table, on small ones made here. The native reading of a whole dotted quad
(``QuadReader``, ``netinfo._read_quad``) gives ``ip_info`` the answer of its frozen reference
(``tests/support/netinfo_reference.py``) on every AS network's first address, every
non-public range's edges, random addresses and text that is no canonical quad."""

from __future__ import annotations

import random
from array import array
from ipaddress import IPv4Address

import geoip2fast
import pytest

from processors import geoip_tables
from processors._native import GeoIp4, QuadReader
from processors.netinfo import (
    _geo,
    _geo4,
    _geoip,
    _geoip_tables,
    _native_geo,
    _non_public,
    _quad,
    _read_quad,
    ip_info,
)
from tests.support import netinfo_reference

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
    built = (_native_geo, _geo4, _read_quad)
    for cached in built:
        cached.cache_clear()
    try:
        fallback = _geo4()
        assert not isinstance(getattr(fallback, "__self__", None), GeoIp4)
        assert [fallback(v) for v in values] == [geoip2fast_answer(v) for v in values]
        assert _read_quad()("8.8.8.8") is None  # ip_info reads every address in Python
        ips = [dotted(v) for v in values]
        assert [outcome(ip) for ip in ips] == [reference(ip) for ip in ips]
    finally:
        monkeypatch.undo()
        for cached in built:
            cached.cache_clear()
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


def outcome(ip):
    """``ip_info``'s answer, uncached, its values and their types."""
    got = ip_info.__wrapped__(ip)
    return type(got), tuple(got), tuple(type(v) for v in got)


def reference(ip):
    want = netinfo_reference.ip_info(ip)
    return type(want), tuple(want), tuple(type(v) for v in want)


@pytest.mark.slow
def test_a_dotted_quad_reads_as_the_reference_on_every_as_network_and_non_public_edge():
    tables = _geoip_tables()
    values = {v for v in flat(tables.mainListFirstIPASN) if v < V4_END}
    starts, ends = _non_public().spans(4)
    values |= {v + d for v in (*starts, *ends) for d in (-1, 0, 1) if 0 <= v + d < V4_END}
    rng = random.Random(8)
    values |= {rng.getrandbits(32) for _ in range(20_000)}
    assert len(values) > 500_000 and len(starts) > 10
    read = _read_quad()
    wrong = []
    for v in sorted(values):
        ip = dotted(v)
        assert read(ip) is not None
        if outcome(ip) != reference(ip):
            wrong.append(ip)
    assert wrong == []


TEXTS = [
    "0.0.0.0", "255.255.255.255", "1.2.3.4", "10.0.0.1", "100.64.0.1", "256.1.1.1",
    "1.2.3.256", "01.2.3.4", "1.2.3.04", "1.2.3.00", "00.0.0.0", "1.2.3", "1.2.3.4.5", "1..2.3",
    ".1.2.3", "1.2.3.", "1.2.3.4 ", " 1.2.3.4", "1.2.3.4\n", "\uff11.2.3.4", "1.2.3.\u0664",
    "-1.2.3.4", "+1.2.3.4", "1_0.2.3.4", "1.2.3.4/24", "a.b.c.d", "", "::1", "2001:db8::1",
    "::ffff:1.2.3.4", "1000.2.3.4", "1.2.3.4\ud800", "\ud800", None, 0, b"1.2.3.4",
]  # fmt: skip


class Text(str):
    pass


@pytest.mark.parametrize("ip", TEXTS, ids=[repr(t) for t in TEXTS])
def test_the_native_reading_takes_exactly_the_canonical_quads_and_answers_as_the_reference(ip):
    read = _read_quad()
    canonical = type(ip) is str and _quad(ip) is not None
    assert (read(ip) is not None) == canonical
    if isinstance(ip, str):
        assert read(Text(ip)) is None  # not a str exactly: ip_info's own way
    if canonical:
        assert outcome(ip) == reference(ip)


def test_the_reader_refuses_ranges_that_are_not_sorted_and_disjoint():
    geo = _native_geo()
    for starts, ends in (([5, 1], [6, 2]), ([1, 5], [5, 6]), ([3], [2]), ([1], [])):
        with pytest.raises(ValueError, match="private ranges"):
            QuadReader(geo=geo, private_starts=starts, private_ends=ends, hosting_of=bool)
    reader = QuadReader(geo=geo, private_starts=[0], private_ends=[V4_END - 1], hosting_of=bool)
    assert reader.read("8.8.8.8") == (None, None, False, "8.8.8.0/24", True)
    hosting = QuadReader(geo=geo, private_starts=[], private_ends=[], hosting_of=bool)
    assert hosting.read("8.8.8.8") == ("US", "GOOGLE", True, "8.8.8.0/24", False)
