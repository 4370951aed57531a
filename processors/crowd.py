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
``processors.entity_state``; the store is native code): ``crowd_keys(purchase)`` names the
keys, ``crowd_row(purchase, ts)`` is what each key keeps of a purchase, ``crowd_store()``
builds the store that ``FeatureEngine`` applies every purchase to, and ``crowd_features(out,
purchase, store, ts)`` (``crowd_values``: the same as a tuple) reads the rows strictly before
the purchase. Distinct-wallet counts include the purchase's own
wallet and saturate at 64. Rates compare the last 10 minutes with the key's own normal rate
(its purchases per 10 minutes over the 24 whole hours before the current one), so a show that
always sells fast is not a crowd, but a tier that suddenly sells to many wallets is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from processors.crowd_state import CrowdStore, Row, crowd_store
from processors.money import amount_ref, unit_price_ref
from processors.netinfo import ip_info, ua_family
from processors.records import Order
from processors.signals import MISSING, flag
from processors.timeutil import to_ms

KINDS = ("tier", "coord", "net", "asn", "bin", "ua")
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


def price_band(purchase: Mapping, unit_ref: int | None = None) -> int:
    """The purchase's tier: ``unit_ref`` is its unit price in reference minor units when the
    caller has it already (``processors.records.Order.unit``)."""
    unit = unit_price_ref(purchase) if unit_ref is None else unit_ref
    band = _BANDS.get(unit)
    if band is None:  # prices repeat (a show has few): each one's band is worked out once
        if len(_BANDS) >= BANDS_MEMO_CAP:
            _BANDS.clear()
        band = _BANDS[unit] = int(round(math.log(max(unit, 1)) / BAND_STEP))
    return band


BANDS_MEMO_CAP = 4096
_BANDS: dict[int, int] = {}


def crowd_keys(purchase: Mapping) -> list[str]:
    """The aggregate keys this purchase counts in (absent inputs give no key)."""
    return list(crowd_keyed(purchase).values())


def crowd_keyed(purchase: Mapping, unit_ref: int | None = None) -> dict[str, str]:
    """``crowd_keys`` by kind (``KINDS``), in the same order (``unit_ref``: see ``price_band``)."""
    show, get = purchase["show_id"], purchase.get
    band = price_band(purchase, unit_ref)
    info = ip_info(get("ip"))
    keys = {"tier": f"tier:{show}:{band}",
            "coord": f"coord:{show}:{band}:{int(purchase['quantity'])}"}
    if network := info.network:
        keys["net"] = f"net:{network}"
    if asn := info.asn:
        keys["asn"] = f"asn:{asn}"
    if card_bin := get("card_bin"):
        keys["bin"] = f"bin:{card_bin}"
    keys["ua"] = f"ua:{ua_family(get('user_agent'))}"
    return keys


def crowd_row(purchase: Mapping, ts: int) -> Row:
    """What every key keeps of a purchase: (ts, wallet, card, small amount)."""
    small = int(amount_ref(purchase) <= SMALL_AMOUNT_REF_MINOR)
    return (ts, purchase["wallet"], purchase.get("card_fingerprint") or "", small)


def order_crowd_row(o: Order) -> Row:
    """``crowd_row`` of a purchase already read (``processors.records.read_order``)."""
    return (o.ts, o.wallet, o.card or "", int(o.amount <= SMALL_AMOUNT_REF_MINOR))


def apply_purchase(store: CrowdStore, purchase: Mapping) -> None:
    """Apply a purchase to its keys (once per purchase id; replay and the replica apply
    ``order_crowd_row`` of the order they read already)."""
    ts = to_ms(purchase["occurred_at"])
    assert ts is not None
    store.apply_row(purchase["purchase_id"], crowd_row(purchase, ts), crowd_keys(purchase))


def crowd_features(out: dict, purchase: Mapping, store: CrowdStore | None, ts: int) -> None:
    """``CROWD_FEATURES`` into ``out`` (``crowd_values`` by name)."""
    out.update(zip(CROWD_FEATURES, crowd_values(purchase, store, ts), strict=True))


def crowd_values(purchase: Mapping, store: CrowdStore | None, ts: int,
                 keyed: Mapping[str, str] | None = None) -> tuple[float, ...]:
    """``CROWD_FEATURES`` in order. ``store`` None (a caller that keeps no crowd state) reads
    as empty: no crowd seen, the stateless signals (AS, country) still computed.
    ``keyed``: ``crowd_keyed(purchase)`` when the caller has it already."""
    keyed = crowd_keyed(purchase) if keyed is None else keyed
    info = ip_info(purchase.get("ip"))
    # nine names, not a starred one: unpacking to a list and splicing it cost ~0.5 us a call
    (tier_wallets, tier_rate, coord_wallets, net_wallets, asn_rate, bin_wallets, bin_cards,
     bin_small, ua_rate) = (store if store is not None else _EMPTY).values(
        keyed["tier"], keyed["coord"], keyed.get("net"), keyed.get("asn"), keyed.get("bin"),
        keyed["ua"], purchase["wallet"], ts, purchase.get("card_fingerprint"))
    return (
        tier_wallets, tier_rate, coord_wallets, net_wallets, asn_rate,
        (1.0 if info.hosting else 0.0) if info.asn else MISSING,
        _country_mismatch(purchase, info.country),
        bin_wallets, bin_cards, bin_small,
        ua_rate,
    )


_EMPTY = crowd_store()  # never applied to: every key reads as unseen


def _country_mismatch(purchase: Mapping, ip_country: str | None) -> float:
    geo = purchase.get("geo")
    claimed = (geo or {}).get("country") or purchase.get("card_country")
    if not ip_country or not claimed:
        return MISSING
    return flag(ip_country != str(claimed).upper())
