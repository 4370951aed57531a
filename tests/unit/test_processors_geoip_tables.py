"""geoip2fast's tables packed into arrays (processors/geoip_tables.py): the same numbers, the
same lookups."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from array import array
from bisect import bisect_right
from pathlib import Path

import pytest

from processors.geoip_tables import Wide, compact, packed

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def test_each_chunk_gets_the_smallest_container_that_gives_back_the_same_ints():
    assert packed([3, 200]).typecode == "B" and packed([3, 300]).typecode == "H"
    assert packed([1 << 16]).itemsize == 4 and packed([(1 << 32) - 1]).itemsize == 4
    assert packed([1 << 32]).itemsize == 8 and packed([1 << 40, 1]).typecode == "Q"
    assert packed([]) == [] and packed([-1, 5]) == [-1, 5]
    assert packed([1 << 130]) == [1 << 130]
    wide = [0x2001_0DB8 << 96, (0x2A00 << 112) + 17, (1 << 128) - 1]
    chunk = packed(wide)
    assert isinstance(chunk, Wide) and list(map(chunk.__getitem__, range(3))) == wide
    assert len(chunk) == 3
    for x in (wide[0] - 1, wide[0], wide[1] + 1, wide[2]):
        assert bisect_right(chunk, x) == bisect_right(wide, x)


def test_an_unknown_version_is_left_alone():
    module = type(sys)("fake")
    module.mainListFirstIP = [[1, 2, 3]]
    assert compact(module, "0.0.1") == 0 and module.mainListFirstIP == [[1, 2, 3]]
    assert compact(module, "1.2.2") == 3 and module.mainListFirstIP == [array("B", [1, 2, 3])]


LOOKUPS = """
import importlib, ipaddress, json, random
import geoip2fast
from geoip2fast import GeoIP2Fast
from processors import geoip_tables
from processors.netinfo import GEOIP_DATA
tables = importlib.import_module("geoip2fast.geoip2fast")
geo = GeoIP2Fast(geoip2fast_data_file=GEOIP_DATA, verbose=False)
rng = random.Random(7)
starts = [n for chunks in (tables.mainListFirstIP, tables.mainListFirstIPASN)
          for chunk in chunks for n in rng.sample(chunk, min(len(chunk), 60))]
ips = [str(ipaddress.ip_address(n + d)) for n in starts for d in (-1, 0, 1)
       if 0 <= n + d < 1 << 128 and not (n < 1 << 32 <= n + d)]
ips += [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(20000)]
ips += [str(ipaddress.IPv6Address((0x2 << 124) | rng.getrandbits(125))) for _ in range(5000)]
ips += ["not-an-ip", "10.0.0.1", "::1"]
def answers():
    return [[r.country_code, r.country_name, r.cidr, r.is_private, r.asn_name, r.asn_cidr]
            for r in map(geo.lookup, ips)]
before = answers()
moved = geoip_tables.compact(tables, geoip2fast.__version__)
print(json.dumps({"same": answers() == before, "moved": moved, "ips": len(ips),
                  "lists_left": sum(isinstance(c, list) for c in tables.mainListFirstIP)}))
"""


def test_lookups_answer_the_same_after_packing():
    out = subprocess.run([sys.executable, "-c", LOOKUPS], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    result = json.loads(out.stdout)
    assert result["same"] and result["lists_left"] == 0
    assert result["moved"] > 2_000_000 and result["ips"] > 40_000
