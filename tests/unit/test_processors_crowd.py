from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from processors.crowd import (
    CROWD_FEATURES,
    apply_purchase,
    crowd_features,
    crowd_store,
    crowd_values,
)
from processors.features import FEATURE_NAMES, FeatureEngine
from processors.netinfo import ip_info, ua_family

pytestmark = pytest.mark.unit

T0 = datetime(2025, 3, 3, 15, tzinfo=UTC)
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36"


def purchase(k: int, at: datetime, **over) -> dict:
    return {
        "purchase_id": f"p{k}", "occurred_at": at, "wallet": f"0x{k:040x}", "user_id": f"u{k}",
        "organizer_id": "org1", "show_id": "show1", "ticket_id": f"t{k}", "quantity": 2,
        "unit_price_minor": 6500, "currency": "USD", "channel": "PRIMARY",
        "seller_wallet": None, "payment_method": "CARD", "card_fingerprint": f"card{k}",
        "card_country": "US", "email_domain": "gmail.com", "ip": f"24.5.6.{k % 250 + 1}",
        "geo": {"lat": 40.7, "lon": -74.0, "country": "US"}, "device_id": f"d{k}",
        "user_agent": CHROME, "account_created_at": at - timedelta(days=300),
        "sale_opens_at": T0, "mfa_enabled": False, "phone_verified": True,
        "email_verified": True, "ingested_at": None, "card_bin": "411111", **over,
    }


def run(purchases: list[dict]) -> list[dict]:
    engine = FeatureEngine()
    return [engine.process("purchase", p) for p in purchases]


def test_ip_country_as_and_hosting_come_from_the_offline_data():
    home, cloud = ip_info("24.5.6.7"), ip_info("52.1.2.3")
    assert (home.country, home.hosting, home.network) == ("US", False, "24.5.6.0/24")
    assert cloud.hosting and cloud.asn
    assert ip_info("2a01:4f8::1").network == "2a01:4f8::/64"
    assert ip_info("10.0.0.1").private and ip_info("nope").network is None
    assert ua_family(CHROME).startswith("Chrome/") and ua_family(None) == "none"


def test_each_address_of_a_slash_24_gets_its_own_lookup_answer():
    """Every address of a /24, one that GeoIP networks span (24.5.6.0/24) or one split into
    narrower networks (88.107.182.0/25 is one country block, 107.185.69.0/27 one country and
    AS block), gets its own lookup's answer from ``ip_info``."""
    import random

    from processors.netinfo import _geo, _geoip
    from tests.support.netinfo_reference import _net24_geo

    rng = random.Random(11)
    prefixes = ["88.107.182", "107.185.69", "24.5.6", "52.1.2", "149.56.22"]
    prefixes += [f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}"
                 for _ in range(200)]
    ip_info.cache_clear()
    addresses = [f"{p}.{last}" for p in prefixes for last in (0, 1, 127, 128, 200, 255)]
    public = [ip for ip in addresses if not ip_info(ip).private]
    assert [(ip_info(ip).country, ip_info(ip).asn) for ip in public] == [
        _geo(_geoip().lookup(ip)) for ip in public]
    assert _net24_geo("88.107.182.0/24") is None and _net24_geo("24.5.6.0/24") is not None
    assert ip_info("88.107.182.1").country != ip_info("88.107.182.200").country


def test_many_wallets_on_one_network_tier_and_bin_within_minutes():
    crowd = [purchase(k, T0 + timedelta(seconds=20 * k)) for k in range(30)]
    last = run(crowd)[-1]
    assert last["net_wallets_1h"] == 30  # one /24
    assert last["tier_wallets_10m"] == 30 and last["coord_wallets_10m"] == 30
    assert last["bin_wallets_1h"] == 30 and last["bin_cards_1h"] == 30
    assert last["tier_rate_ratio"] > 10  # a new tier: no normal pace yet
    assert last["asn_hosting"] == 0 and last["ip_country_mismatch"] == 0


def test_spread_out_buyers_are_not_a_crowd_and_later_events_are_not_counted():
    apart = [purchase(k, T0 + timedelta(hours=2 * k), ip=f"{24 + k}.9.9.9") for k in range(5)]
    last = run(apart)[-1]
    assert last["tier_wallets_10m"] == 1 and last["net_wallets_1h"] == 1
    store = crowd_store()
    p = purchase(1, T0)
    apply_purchase(store, purchase(2, T0 + timedelta(minutes=5)))  # a replica read ahead
    apply_purchase(store, p)
    out: dict = {}
    crowd_features(out, p, store, int(T0.timestamp() * 1000))
    assert out["tier_wallets_10m"] == 1 and out["net_wallets_1h"] == 1


def test_small_amounts_on_one_bin_count_as_probes_and_redeliveries_once():
    probes = [purchase(k, T0 + timedelta(minutes=k), unit_price_minor=300, quantity=1)
              for k in range(6)]
    assert run(probes)[-1]["bin_small_1h"] == 5
    store = crowd_store()
    apply_purchase(store, probes[0])
    apply_purchase(store, probes[0])
    assert len(store.rows_of("bin:411111") or ()) == 1 and store.has_seen("p0")


def test_rate_ratio_compares_with_the_key_s_own_pace():
    store, start = crowd_store(), T0 - timedelta(hours=20)
    for k in range(20 * 6):  # one purchase every 10 min for 20 hours: the normal pace
        apply_purchase(store, purchase(k, start + timedelta(minutes=10 * k)))
    at = start + timedelta(minutes=1200)
    now = purchase(999, at, ip="24.5.6.7")
    values = dict(zip(CROWD_FEATURES, crowd_values(now, store, int(at.timestamp() * 1000)),
                      strict=True))
    assert 0.5 < values["tier_rate_ratio"] < 2.5 and 0.5 < values["ua_rate_ratio"] < 2.5
    fresh = dict(zip(CROWD_FEATURES, crowd_values(now, crowd_store(), int(at.timestamp() * 1000)),
                     strict=True))
    assert fresh["tier_rate_ratio"] == fresh["ua_rate_ratio"] == 1.0  # a key never seen


def test_missing_inputs_give_missing_not_zero_and_features_are_all_named():
    out = run([purchase(1, T0, card_bin=None, ip="not-an-ip", geo=None, card_country=None)])[0]
    assert set(out) == set(FEATURE_NAMES)
    assert out["bin_wallets_1h"] == out["net_wallets_1h"] == -1.0
    assert out["asn_hosting"] == out["ip_country_mismatch"] == -1.0
