"""``ip_info`` tells a dotted quad by its four parts' texts (``_OCTETS``) instead of the regular
expression, and builds its answer without ``IpInfo``'s frame: the same answer (values, types)
or the same error as the reading it replaced (``tests/support/netinfo_reference.py``) for every
address of a simulated week, random ones across the IPv4 space and edge strings."""

from __future__ import annotations

import random

import pytest

from processors.netinfo import IpInfo, ip_info
from tests.support import netinfo_reference

pytestmark = pytest.mark.unit


class Text(str):
    """A str that is not a str exactly: matched against the pattern first, as before."""


def outcome(read, ip):
    try:
        got = read(ip)
    except Exception as exc:  # noqa: BLE001 - the error is the outcome compared
        return ("raised", type(exc), str(exc))
    return ("info", type(got), tuple(got), tuple(type(v) for v in got))


def assert_same(ip):
    want = outcome(netinfo_reference.ip_info, ip)
    assert outcome(ip_info.__wrapped__, ip) == want, ip
    assert want[0] == "raised" or outcome(ip_info, ip) == want, ip


EDGES = [
    "0.0.0.0", "255.255.255.255", "1.2.3.4", "8.8.8.8", "52.1.2.3", "24.5.6.7",
    "10.0.0.1", "192.168.1.1", "127.0.0.1", "100.64.0.1", "169.254.1.1", "224.0.0.1",
    "256.1.1.1", "1.2.3.256", "01.2.3.4", "1.2.3.04", "1.2.3.00", "00.0.0.0", "1.2.3",
    "1.2.3.4.5", "1..2.3", ".1.2.3", "1.2.3.", "1.2.3.4 ", " 1.2.3.4", "1.2.3.4\n",
    "\uff11.2.3.4", "1.2.3.\u0664", "-1.2.3.4", "+1.2.3.4", "1_0.2.3.4", "1.2.3.4/24",
    "a.b.c.d", "", "::1", "2001:db8::1", "2a01:4f8::1", "::ffff:1.2.3.4", "fe80::1%eth0",
    "2001:DB8::1", "nope", None, 0, 12345, 3.5, b"1.2.3.4", ("1.2.3.4",),
    Text("1.2.3.4"), Text("10.0.0.1"), Text("01.2.3.4"), Text(""), Text("::1"),
]  # fmt: skip


@pytest.mark.parametrize("ip", EDGES, ids=[repr(e) for e in EDGES])
def test_an_edge_address_reads_as_the_reference(ip):
    assert_same(ip)


def test_a_simulated_week_and_random_addresses_read_as_the_reference():
    from models.simulator import SimConfig, simulate

    ips = {r["ip"] for k, r in simulate(SimConfig(seed=9, days=7)) if k == "purchase"}
    rng = random.Random(4)
    ips |= {".".join(str(rng.randrange(256)) for _ in range(4)) for _ in range(3_000)}
    ips |= {f"{rng.randrange(256)}.{rng.randrange(256)}.7.{n}" for n in range(0, 256, 5)}
    assert len(ips) > 5_000
    for ip in ips:
        assert_same(ip)
    assert type(ip_info("1.2.3.4")) is IpInfo
