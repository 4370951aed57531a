"""``processors.netinfo.ip_info`` as written before its dotted-quad test went without the
regular expression and its answer without ``IpInfo``'s frame: a frozen copy of its body (not
cached) as of commit 008c156, calling the same GeoIP, non-public and hosting helpers, and its
/24 helper ``_net24_geo`` (moved here from ``processors/netinfo.py`` when ``ip_info`` stopped
using it: the lookups became native). Do not change it: it is what
``tests/unit/test_netinfo_quad.py`` holds ``ip_info`` to.
"""

from __future__ import annotations

import ipaddress

from processors.netinfo import (
    _IPV4,
    UNKNOWN,
    IpInfo,
    _geo,
    _geoip,
    _non_public,
    is_hosting_as,
)


def _net24_geo(network: str) -> tuple[str | None, str | None] | None:
    """``_geo`` of every address of the IPv4 /24 ``network`` ("a.b.c.0/24") when the GeoIP
    country and AS networks that hold its first address span all of it, else None (then each
    address is looked up): the data's networks are CIDR blocks that do not overlap."""
    found = _geoip().lookup(network[:-3])
    return _geo(found) if _spans_24(found.cidr) and _spans_24(found.asn_cidr) else None


def _spans_24(cidr: str) -> bool:
    return bool(cidr) and int(cidr.rpartition("/")[2]) <= 24


def ip_info(ip: str | None) -> IpInfo:
    if ip and _IPV4.fullmatch(ip):  # the common case, without ipaddress's slow parser
        a, b, c, d = map(int, ip.split("."))
        version, value = 4, a << 24 | b << 16 | c << 8 | d
        network, text = f"{a}.{b}.{c}.0/24", ip  # the pattern admits the canonical form only
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
        return IpInfo(None, None, False, network, True)
    whole = _net24_geo(network) if version == 4 else None
    country, asn = whole if whole is not None else _geo(_geoip().lookup(text))
    return IpInfo(country, asn, is_hosting_as(asn), network, False)
