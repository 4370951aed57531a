"""Real IPv4 networks per country and kind, so that simulated IPs geolocate as they would.

Generated from the same offline GeoLite2 data the processors read (``processors.netinfo``):
a fixed sample of the IPv4 space is looked up and its /24 networks are grouped by country and
by kind — ``hosting`` (the AS is a cloud/hosting/VPN network), ``mobile`` (a mobile carrier,
often behind carrier-grade NAT) or ``residential`` (any other ISP) — at most ``PER_POOL`` per
group, and committed as ``ip_pools.json`` (the lookups take about a minute):

    python -m models.sim.netpool      # regenerate after a geoip2fast upgrade
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from models.sim.ids import hexid
from processors.netinfo import ip_info

SAMPLE = 400_000
PER_POOL = 150
POOLS_PATH = Path(__file__).with_name("ip_pools.json")
MOBILE_WORDS = ("mobile", "wireless", "cellular", "t-mobile", "vodafone", "telcel", "movil",
                "claro", "vivo", "docomo", "softbank", "kddi", "orange", "o2 ", "three")
KINDS = ("residential", "mobile", "hosting")


@lru_cache(maxsize=1)
def pools() -> dict[tuple[str, str], tuple[str, ...]]:
    """``(country, kind) -> /24 prefixes ("a.b.c")``; ``("*", kind)`` pools every country."""
    doc = json.loads(POOLS_PATH.read_text())
    return {tuple(key.split("/")): tuple(v) for key, v in doc["pools"].items()}  # type: ignore


def build_pools() -> dict[tuple[str, str], tuple[str, ...]]:
    rng = np.random.default_rng(20250303)
    found: dict[tuple[str, str], set[str]] = {}
    for value in rng.integers(1 << 24, 224 << 24, SAMPLE):
        ip = f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.1"
        info = ip_info(ip)
        if info.country is None or info.asn is None:
            continue
        name = info.asn.lower()
        kind = ("hosting" if info.hosting else
                "mobile" if any(w in name for w in MOBILE_WORDS) else "residential")
        prefix = ip.rsplit(".", 1)[0]
        found.setdefault((info.country, kind), set()).add(prefix)
        found.setdefault(("*", kind), set()).add(prefix)
    pick = np.random.default_rng(1)
    return {key: tuple(sorted(pick.permutation(sorted(v))[:PER_POOL].tolist()))
            for key, v in found.items()}


def pick_prefix(country: str, kind: str, *parts: object) -> str:
    """A /24 of ``kind`` in ``country`` (any country's when it has none), chosen by hash."""
    table = pools()
    choices = table.get((country, kind)) or table.get((country, "residential")) or table[
        ("*", kind)]
    return choices[int(hexid(*parts, size=4), 16) % len(choices)]


def host(prefix: str, *parts: object) -> str:
    return f"{prefix}.{int(hexid(*parts, size=2), 16) % 254 + 1}"


def address_in(country: str, kind: str, *parts: object) -> str:
    """One address of ``kind`` in ``country``: a hashed /24 and host."""
    return host(pick_prefix(country, kind, *parts), *parts, "host")


if __name__ == "__main__":
    from processors.netinfo import _geoip

    built = build_pools()
    info = _geoip().get_database_info()
    POOLS_PATH.write_text(json.dumps({
        "source": info["source_info"], "sample": SAMPLE, "per_pool": PER_POOL,
        "pools": {f"{c}/{k}": list(v) for (c, k), v in sorted(built.items())},
    }, indent=0) + "\n")
