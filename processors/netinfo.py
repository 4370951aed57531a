"""What an IP address and a user agent say, from offline data shipped in kept packages.

- ``ip_info(ip)``: the IP's country and autonomous system (name and announced network) from
  the GeoLite2 Country+ASN data that ``geoip2fast`` ships (IPv4 and IPv6; nothing is
  downloaded, the file is read once per process), whether the AS is a hosting/cloud/VPN
  network (its name matches ``hosting_as.txt``), and the IP's /24 (IPv4) or /64 (IPv6) network.
  A dotted quad (nearly every IP) is read in one native call (``_read_quad``), its country and
  AS from ``processors._native.GeoIp4``, a copy of geoip2fast's IPv4 tables with
  geoip2fast's answers; anything else the Python way below (IPv6 by geoip2fast's lookup).
  An address that is not publicly routable (``lists.non_public``, the ranges the rule
  ``non_public_ip`` reads: Python 3.11's ``is_global``, tested) has no country or AS.
- ``ua_family(agent)``: browser or client family and OS family (``ua-parser``'s regexes),
  e.g. ``"Chrome/Windows"``; ``"none"`` when absent, ``"other/other"`` when unknown.

Both are cached (an IP or agent seen again costs a dict lookup).
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

    from processors._native import GeoIp4
    from processors.rules.lists import IpRanges

HOSTING_WORDS_PATH = Path(__file__).with_name("hosting_as.txt")
GEOIP_DATA = "geoip2fast-asn-ipv6.dat.gz"
# Answers kept (~290 bytes each, measured): a miss costs ~1.5 us for a dotted quad (read
# natively). 200 000 held 58 MB in every worker (1 M purchases carry 349 000 distinct IPs);
# the replay bench's week of traffic carries 9 000.
IP_CACHE_SIZE = 65_536


class IpInfo(NamedTuple):
    country: str | None  # ISO 3166-1 alpha-2, None when unknown or private
    asn: str | None  # the AS name, None when unknown
    hosting: bool  # the AS is a hosting, cloud or VPN network
    network: str | None  # the /24 (IPv4) or /64 (IPv6) the address is in
    private: bool


UNKNOWN = IpInfo(None, None, False, None, False)
# A dotted quad exactly as ``ipaddress`` accepts one (decimal octets <= 255, no leading zero).
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_OCTETS = {str(n): n for n in range(256)}  # the texts _OCTET admits, and their values


@lru_cache(maxsize=1)
def _geoip():
    """The GeoIP data, loaded once, its tables packed into arrays (``geoip_tables``)."""
    import geoip2fast
    from geoip2fast import GeoIP2Fast

    from processors import geoip_tables

    found = GeoIP2Fast(geoip2fast_data_file=GEOIP_DATA, verbose=False)
    geoip_tables.compact(_geoip_tables(), geoip2fast.__version__)
    return found


def _geoip_tables() -> ModuleType:
    """geoip2fast's module: its globals hold the tables ``lookup`` reads."""
    import importlib

    return importlib.import_module("geoip2fast.geoip2fast")


@lru_cache(maxsize=1)
def _native_geo() -> GeoIp4 | None:
    """geoip2fast's IPv4 tables copied into a native lookup (``geoip_tables.ipv4_lookup``),
    None for a geoip2fast it was not written for."""
    import geoip2fast

    from processors import geoip_tables

    return geoip_tables.ipv4_lookup(_geoip_tables(), _geoip(), geoip2fast.__version__)


@lru_cache(maxsize=1)
def _geo4() -> Callable[[int], tuple[str | None, str | None]]:
    """(country, AS name) of an IPv4 address given as an int: what ``_geo`` reads from
    ``_geoip().lookup`` of it, answered natively from the same tables, or by that lookup."""
    native = _native_geo()
    if native is not None:
        return native.lookup
    geo = _geoip()
    return lambda value: _geo(geo.lookup(str(ipaddress.IPv4Address(value))))


@lru_cache(maxsize=1)
def _read_quad() -> Callable[[object], tuple | None]:
    """``ip_info``'s values of a canonical dotted quad (an exact str), read natively in one
    call (``processors._native.QuadReader``: ``_quad``, ``_non_public``, ``_geo4`` and
    ``is_hosting_as`` as below, hosting asked once per AS); None for anything else, and for
    everything when the lookup is not native."""
    native = _native_geo()
    if native is None:
        return lambda ip: None
    from processors._native import QuadReader

    starts, ends = _non_public().spans(4)
    return QuadReader(geo=native, private_starts=starts, private_ends=ends,
                      hosting_of=is_hosting_as.__wrapped__).read


@lru_cache(maxsize=1)
def hosting_words() -> tuple[str, ...]:
    words = []
    for line in HOSTING_WORDS_PATH.read_text(encoding="utf-8").splitlines():
        word = line.split("#", 1)[0].strip().lower()
        if word:
            words.append(word)
    return tuple(words)


@lru_cache(maxsize=1)
def _hosting_terms() -> tuple[frozenset[str], tuple[str, ...]]:
    """``hosting_words`` as (single words, matched as a token; phrases, as a substring)."""
    words = hosting_words()
    return frozenset(w for w in words if " " not in w), tuple(w for w in words if " " in w)


@lru_cache(maxsize=20_000)
def is_hosting_as(name: str | None) -> bool:
    if not name:
        return False
    lowered = name.lower()
    tokens = lowered.replace("-", " ").replace(",", " ").replace(".", " ").split()
    words, phrases = _hosting_terms()
    return not words.isdisjoint(tokens) or any(p in lowered for p in phrases)


@lru_cache(maxsize=1)
def _non_public() -> IpRanges:
    # Imported here: processors.rules imports the feature names, which import this module.
    from processors.rules.lists import default_lists

    return default_lists().ranges("non_public")


@lru_cache(maxsize=IP_CACHE_SIZE)
def ip_info(ip: str | None) -> IpInfo:
    known = _read_quad()(ip)  # a dotted quad (nearly every IP), natively
    if known is not None:
        return _make_info(IpInfo, known)
    # a dotted quad not read above (no native lookup, or a str that is not a str exactly, which
    # is matched against the pattern first, as it always was) without ipaddress's slow parser
    quad = _quad(ip) if type(ip) is str else (ip and _IPV4.fullmatch(ip) and _quad(ip))
    if quad:
        a, b, c, d = quad
        version, value = 4, a << 24 | b << 16 | c << 8 | d
        network, text = f"{a}.{b}.{c}.0/24", ip  # the canonical form only
    else:
        try:
            address = ipaddress.ip_address(ip or "")
        except ValueError:
            return UNKNOWN
        version, value = address.version, int(address)
        prefix = 24 if version == 4 else 64
        network = str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
        text = str(address)
    if _non_public().holds(version, value):
        return _make_info(IpInfo, (None, None, False, network, True))
    country, asn = _geo4()(value) if version == 4 else _geo(_geoip().lookup(text))
    # ``IpInfo(...)`` as ``IpInfo._make`` makes it, without its frame: once for every new IP
    return _make_info(IpInfo, (country, asn, is_hosting_as(asn), network, False))


_make_info = tuple.__new__


def _quad(ip: str) -> tuple[int, int, int, int] | None:
    """The octets of ``ip`` when it is a dotted quad in canonical form (``_IPV4``: four decimal
    octets of 0-255 without a leading zero, what ``ipaddress`` prints), else None."""
    parts = ip.split(".")
    if len(parts) != 4:
        return None
    a, b, c, d = parts
    try:  # four subscripts: half the time of tuple(map(_OCTETS.get, parts)) and a None test
        return _OCTETS[a], _OCTETS[b], _OCTETS[c], _OCTETS[d]
    except KeyError:  # a part that is no canonical octet (rare)
        return None


def _geo(found) -> tuple[str | None, str | None]:
    """(country, AS name) of a ``GeoIP2Fast.lookup`` result."""
    return (found.country_code if len(found.country_code or "") == 2 else None,
            found.asn_name or None)


@lru_cache(maxsize=20_000)
def ua_family(agent: str | None) -> str:
    if not agent:
        return "none"
    from ua_parser import parse

    parsed = parse(agent[:512])
    browser = parsed.user_agent.family if parsed.user_agent else "other"
    system = parsed.os.family if parsed.os else "other"
    return f"{browser}/{system}"


def warm() -> None:
    """Read the GeoIP data and compile the user-agent patterns now, not in the first batch
    (which would stall for a few hundred ms): an agent no pattern matches tries them all."""
    _read_quad()
    _hosting_terms()
    _non_public()
    ua_family.__wrapped__("warm-up")
