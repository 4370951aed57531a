"""Signals that see distributed attacks: aggregates across wallets, in event time.

Each aggregate is an entity state (``CrowdState``) under a key derived from the purchase:

| key | what it groups |
|---|---|
| ``tier:<show>:<band>`` | one show's price tier (unit price in reference currency, 30 % bands) |
| ``coord:<show>:<band>:<quantity>`` | the same order shape: same show, tier and quantity |
| ``net:<network>`` | the IP's /24 (IPv4) or /64 (IPv6) |
| ``asn:<AS name>`` | the IP's autonomous system (offline GeoLite2 data, ``netinfo``) |
| ``bin:<card_bin>`` | the card's issuer number, when the producer sends it |
| ``ua:<family>`` | the user-agent family (browser/client and OS) |

States and their store are in ``processors.crowd_state`` (the same AS-OF contract as
``processors.entity_state``): ``crowd_keys(purchase)`` names the keys, ``crowd_row(purchase,
ts)`` is what each key keeps of a purchase, ``crowd_store()`` builds the store that
``FeatureEngine`` applies every purchase to, and ``crowd_features(out, purchase, states, ts)``
reads the rows strictly before the purchase. Distinct-wallet counts include the purchase's own
wallet and saturate at 64. Rates compare the last 10 minutes with the key's own normal rate
(its purchases per 10 minutes over the 24 whole hours before the current one), so a show that
always sells fast is not a crowd, but a tier that suddenly sells to many wallets is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from processors.money import amount_ref, unit_price_ref
from processors.signals import MISSING, flag
from processors.timeutil import HOUR_MS, MINUTE_MS
from tests.support.legacy_path.crowd_state import CrowdState, CrowdStore, Row
from tests.support.legacy_path.netinfo import ip_info, ua_family

KINDS = ("tier", "coord", "net", "asn", "bin", "ua")
RECENT_MS = 10 * MINUTE_MS
WALLETS_CAP = 64  # distinct-wallet and card counts saturate here
BAND_STEP = math.log(1.3)
SMALL_AMOUNT_REF_MINOR = 500  # a card-testing probe: 5.00 USD or less (FeatureConfig's value)

CROWD_FEATURES: tuple[str, ...] = (
    "tier_wallets_10m",
    "tier_rate_ratio",
    "coord_wallets_10m",
    "net_wallets_1h",
    "asn_rate_ratio",
    "asn_hosting",
    "ip_country_mismatch",
    "bin_wallets_1h",
    "bin_cards_1h",
    "bin_small_1h",
    "ua_rate_ratio",
)


def price_band(purchase: Mapping) -> int:
    return int(round(math.log(max(unit_price_ref(purchase), 1)) / BAND_STEP))


def crowd_keys(purchase: Mapping) -> list[str]:
    """The aggregate keys this purchase counts in (absent inputs give no key)."""
    show, band = purchase["show_id"], price_band(purchase)
    info = ip_info(purchase.get("ip"))
    keys = [f"tier:{show}:{band}", f"coord:{show}:{band}:{int(purchase['quantity'])}"]
    if info.network:
        keys.append(f"net:{info.network}")
    if info.asn:
        keys.append(f"asn:{info.asn}")
    if purchase.get("card_bin"):
        keys.append(f"bin:{purchase['card_bin']}")
    keys.append(f"ua:{ua_family(purchase.get('user_agent'))}")
    return keys


def crowd_row(purchase: Mapping, ts: int) -> Row:
    """What every key keeps of a purchase: (ts, wallet, card, small amount)."""
    small = int(amount_ref(purchase) <= SMALL_AMOUNT_REF_MINOR)
    return (ts, purchase["wallet"], purchase.get("card_fingerprint") or "", small)


def crowd_store() -> CrowdStore:
    return CrowdStore(crowd_keys, crowd_row)


def rate_ratio(state: CrowdState | None, ts: int) -> float:
    """(purchases in the 10 min before ``ts`` + 1) / (normal purchases per 10 min over the 24
    whole hours before this one + 1): 1 is the usual pace, 10 ten times it."""
    if state is None:
        return 1.0
    recent = len(state.between(ts - RECENT_MS, ts))
    return (recent + 1) / (state.hourly_before(ts // HOUR_MS, 24) / (24 * 6) + 1)


def _wallets(state: CrowdState | None, me: str, lo: int, ts: int) -> float:
    seen = {row[1] for row in state.between(lo, ts)} if state is not None else set()
    seen.add(me)
    return float(min(len(seen), WALLETS_CAP))


def crowd_features(out: dict, purchase: Mapping, states: Mapping[str, CrowdState | None] | None,
                   ts: int) -> None:
    """``CROWD_FEATURES`` into ``out``. ``states`` None (a caller that keeps no crowd state)
    reads as empty states: no crowd seen, the stateless signals (AS, country) still computed."""
    states = states or {}
    keys = {k.split(":", 1)[0]: k for k in crowd_keys(purchase)}
    get = {kind: states.get(keys[kind]) if kind in keys else None for kind in KINDS}
    me = purchase["wallet"]
    out["tier_wallets_10m"] = _wallets(get["tier"], me, ts - RECENT_MS, ts)
    out["tier_rate_ratio"] = rate_ratio(get["tier"], ts)
    out["coord_wallets_10m"] = _wallets(get["coord"], me, ts - RECENT_MS, ts)
    out["net_wallets_1h"] = _wallets(get["net"], me, ts - HOUR_MS, ts) if "net" in keys else MISSING
    out["asn_rate_ratio"] = rate_ratio(get["asn"], ts) if "asn" in keys else MISSING
    out["ua_rate_ratio"] = rate_ratio(get["ua"], ts)
    info = ip_info(purchase.get("ip"))
    out["asn_hosting"] = flag(info.hosting) if info.asn else MISSING
    out["ip_country_mismatch"] = _country_mismatch(purchase, info.country)
    _bin_features(out, purchase, get["bin"] if "bin" in keys else None, "bin" in keys, ts)


def _country_mismatch(purchase: Mapping, ip_country: str | None) -> float:
    geo = purchase.get("geo")
    claimed = (geo or {}).get("country") or purchase.get("card_country")
    if not ip_country or not claimed:
        return MISSING
    return flag(ip_country != str(claimed).upper())


def _bin_features(out: dict, p: Mapping, state: CrowdState | None, present: bool,
                  ts: int) -> None:
    if not present:
        out["bin_wallets_1h"] = out["bin_cards_1h"] = out["bin_small_1h"] = MISSING
        return
    rows = state.between(ts - HOUR_MS, ts) if state is not None else []
    out["bin_wallets_1h"] = float(min(len({r[1] for r in rows} | {p["wallet"]}), WALLETS_CAP))
    cards = {r[2] for r in rows if r[2]} | ({p["card_fingerprint"]} if p.get(
        "card_fingerprint") else set())
    out["bin_cards_1h"] = float(min(len(cards), WALLETS_CAP))
    out["bin_small_1h"] = float(sum(r[3] for r in rows))
