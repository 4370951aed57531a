"""geoip2fast's lookup tables held in typed arrays instead of lists of Python ints.

geoip2fast (``KNOWN_VERSIONS``) unpickles its data into module-level lists of chunks: about
2.9 M numbers (network starts, country and AS ids, prefix lengths), each a Python int of 28-44
bytes behind an 8-byte pointer: ~104 MB resident per worker (measured with tracemalloc), the
largest single item of an idle worker. Its ``lookup`` only bisects and indexes those chunks,
so each chunk is replaced by an ``array.array`` of the same numbers (8 bytes or less each;
IPv6 network starts, 128-bit, by a pair of 64-bit arrays behind the same sequence
interface). ``lookup`` runs unchanged on the same numbers and answers the same
(``tests/unit/test_processors_geoip_tables.py`` compares lookups before and after).

Another geoip2fast version is left as it is (``compact`` returns 0): correct, only larger.

``ipv4_lookup`` copies the IPv4 part of the country and AS tables (and the id -> answer lists)
into ``processors._native.GeoIp4``, which answers an IPv4 address's (country, AS name) as
``lookup`` does, without the Python around it (``native/src/geo.rs`` says how ``lookup``
reads its tables; ``tests/unit/test_native_geoip4.py`` compares the two).
"""

from __future__ import annotations

import logging
from array import array
from bisect import bisect_left
from itertools import chain, islice
from types import ModuleType
from typing import Any

from processors._native import GeoIp4

log = logging.getLogger(__name__)

KNOWN_VERSIONS = frozenset({"1.2.2"})
TABLES = ("mainListFirstIP", "mainListFirstIPASN", "mainListIDCountryCodes", "mainListIDASN",
          "mainListNetlength", "mainListNetlengthASN", "mainListIDCity")
_LOW = (1 << 64) - 1
# Each typecode with the bound its machine size gives (here B 1, H 2, I 4, Q 8 bytes: "L" is
# 8 bytes on 64-bit Linux, so 32-bit numbers go in "I"), smallest first.
_CODES = tuple((code, 1 << 8 * array(code).itemsize) for code in "BHIQ")
_V4_END = 1 << 32
_RESERVED_IDS = 16  # country ids below it are reserved networks (``_country_lookup``)


class Wide:
    """A read-only sequence of unsigned 128-bit ints kept as two arrays of 64-bit halves."""

    __slots__ = ("hi", "lo")

    def __init__(self, numbers: list[int]) -> None:
        self.hi = array("Q", [n >> 64 for n in numbers])
        self.lo = array("Q", [n & _LOW for n in numbers])

    def __len__(self) -> int:
        return len(self.lo)

    def __getitem__(self, i: int) -> int:
        return self.hi[i] << 64 | self.lo[i]


def packed(numbers: list[int]) -> array | Wide | list[int]:
    """The smallest container that returns the same ints (the list itself if any is negative
    or has 129 bits or more)."""
    if not numbers or min(numbers) < 0:
        return numbers
    top = max(numbers)
    for code, bound in _CODES:
        if top < bound:
            return array(code, numbers)
    return Wide(numbers) if top < 1 << 128 else numbers


def compact(module: ModuleType, version: str) -> int:
    """Replace ``module``'s tables (geoip2fast's ``geoip2fast.geoip2fast``, loaded) by packed
    chunks; the count of numbers moved (0 for an unknown version)."""
    if version not in KNOWN_VERSIONS:
        log.warning("geoip2fast %s: lookup tables kept as lists (written for %s)",
                    version, ", ".join(sorted(KNOWN_VERSIONS)))
        return 0
    moved = 0
    for name in TABLES:
        chunks = getattr(module, name, None)
        if isinstance(chunks, list) and all(isinstance(c, list) for c in chunks):
            setattr(module, name, [packed(c) for c in chunks])
            moved += sum(map(len, chunks))
    return moved


def ipv4_lookup(module: ModuleType, geo: Any, version: str) -> GeoIp4 | None:
    """The native IPv4 lookup over ``module``'s tables, loaded by ``geo`` (a ``GeoIP2Fast``
    with country, AS and IPv6 data, as ``processors.netinfo`` loads it); None for another
    geoip2fast version or data (then ``geo.lookup`` is the only one)."""
    if version not in KNOWN_VERSIONS or not (geo.country and geo.asn and geo.ipv6) or geo.city:
        return None
    count = _v4_count(module.mainListFirstIP)
    asn_count = _v4_count(module.mainListFirstIPASN)
    return GeoIp4(
        starts=_head("I", module.mainListFirstIP, count),
        prefixes=_head("B", module.mainListNetlength, count),
        ids=_head("H", module.mainListIDCountryCodes, count),
        countries=[_country(k, entry, geo.error_code_private_networks)
                   for k, entry in enumerate(module.mainListNamesCountry)],
        not_found=_two_letters(geo.error_code_network_not_found),
        asn_starts=_head("I", module.mainListFirstIPASN, asn_count),
        asn_ids=_head("I", module.mainListIDASN, asn_count),
        asn_names=[name or None for name in module.mainListNamesASN],  # ``_geo``'s reading
    )


def _v4_count(chunks: list[Any]) -> int:
    """How many of a table's networks (sorted starts, in chunks) are IPv4 ones."""
    return sum(bisect_left(chunk, _V4_END) for chunk in chunks)


def _head(code: str, chunks: list[Any], count: int) -> bytes:
    """The first ``count`` numbers of a table's chunks as packed ``code`` machine ints."""
    return array(code, islice(chain.from_iterable(chunks), count)).tobytes()


def _country(k: int, entry: str, private_code: str) -> str | None:
    """The country answer of id ``k`` (its ``mainListNamesCountry`` entry "code:name") as
    ``_country_lookup`` and then ``processors.netinfo._geo`` read it."""
    code, _name = entry.split(":")  # a name that splits otherwise: not the data known here
    return _two_letters(private_code if k < _RESERVED_IDS else code)


def _two_letters(code: str | None) -> str | None:
    """``processors.netinfo._geo``'s reading of a country code: kept when two characters."""
    return code if len(code or "") == 2 else None
