"""The scoring path's blocklist lookups (``streams/blocklists.py``): a purchase's wallet,
seller and IP against the snapshot's live entries, in the lists' normal form."""

from __future__ import annotations

import pytest

from streams.blocklists import BlocklistSnapshot

pytestmark = pytest.mark.unit

NOW = 1_000_000.0  # seconds
A, B, C = "0x" + "a" * 40, "0x" + "b" * 40, "0x" + "c" * 40


def snapshot(wallets: dict[str, float], ips: dict[str, float]) -> BlocklistSnapshot:
    """A snapshot holding these entries (value -> expiry in ms), refresh thread not started."""
    snap = BlocklistSnapshot(blocklist=None, refresh_s=60, clock=lambda: NOW)  # type: ignore[arg-type]
    snap.entries = {"wallet": wallets, "ip": ips}
    return snap


def purchase(wallet: str, ip: str | None, seller: str | None = None) -> dict:
    return {"wallet": wallet, "ip": ip, "seller_wallet": seller}


def test_live_entries_match_in_normal_form_and_expired_ones_do_not():
    later, earlier = NOW * 1000 + 60_000, NOW * 1000 - 1
    snap = snapshot({A: later, C: earlier}, {"10.0.0.1": later, "2001:db8::1": later})
    got = snap.blocked([
        purchase(A.upper().replace("0X", "0x"), "::ffff:10.0.0.1"),  # mixed case; IPv4-mapped
        purchase(B, "2001:DB8:0::1", seller=A),  # the seller is listed; IPv6 in another form
        purchase(C, "not-an-ip"),  # expired; an invalid IP matches nothing
        purchase(B, None),
    ])  # fmt: skip
    assert got.wallets == {A.upper().replace("0X", "0x"), A}
    assert got.ips == {"::ffff:10.0.0.1", "2001:DB8:0::1"}


def test_empty_lists_match_nothing():
    got = snapshot({}, {}).blocked([purchase(A, "10.0.0.1", seller=B)])
    assert got.wallets == frozenset() and got.ips == frozenset()
    only_ips = snapshot({}, {"10.0.0.1": NOW * 1000 + 1}).blocked([purchase(A, "10.0.0.1")])
    assert only_ips.wallets == frozenset() and only_ips.ips == {"10.0.0.1"}
