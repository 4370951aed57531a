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
``processors.entity_state``; the store is native code): ``crowd_read(purchase)`` reads what
the crowd features need of a purchase, once (its keys, ``CrowdRead.keys``, and the two
features no store holds, from one ``ip_info``), ``crowd_row(purchase, ts)`` is what each key
keeps of a purchase, ``crowd_store()`` builds the store that ``FeatureEngine`` applies every
purchase to (``apply_order(order, read.keys)``: that row, of the order read), and ``crowd_features(out, purchase,
store, ts)`` (``crowd_values``: the same as a tuple) reads the rows strictly before the
purchase. Distinct-wallet counts include the purchase's own wallet and saturate at 64. Rates compare the last 10 minutes with the key's own normal rate
(its purchases per 10 minutes over the 24 whole hours before the current one), so a show that
always sells fast is not a crowd, but a tier that suddenly sells to many wallets is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

from processors.crowd_state import SMALL_AMOUNT_REF_MINOR, CrowdStore, Row, crowd_store
from processors.money import amount_ref, unit_price_ref
from processors.netinfo import ip_info, ua_family
from processors.signals import MISSING, flag
from processors.timeutil import to_ms

KINDS = ("tier", "coord", "net", "asn", "bin", "ua")
BAND_STEP = math.log(1.3)

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


class CrowdRead(NamedTuple):
    """What the crowd features read of a purchase (``crowd_read``): its key of each kind, in
    ``KINDS`` order (None where the purchase gives none: no network or AS for its IP, no
    card BIN), and the two features that need no store, placed in ``CROWD_FEATURES`` by
    ``CrowdStore.values``."""

    keys: tuple[str, str, str | None, str | None, str | None, str]
    asn_hosting: float
    ip_country_mismatch: float


def crowd_read(purchase: Mapping, unit_ref: int | None = None) -> CrowdRead:
    """What the crowd features read of ``purchase`` (``unit_ref``: see ``price_band``), its
    IP looked up once: read with its order by every path that applies or scores it."""
    show, get = purchase["show_id"], purchase.get
    band = price_band(purchase, unit_ref)
    info = ip_info(get("ip"))
    network, asn, card_bin = info.network, info.asn, get("card_bin")
    keys = (f"tier:{show}:{band}",
            f"coord:{show}:{band}:{int(purchase['quantity'])}",
            f"net:{network}" if network else None,
            f"asn:{asn}" if asn else None,
            f"bin:{card_bin}" if card_bin else None,
            f"ua:{ua_family(get('user_agent'))}")
    hosting = (1.0 if info.hosting else 0.0) if asn else MISSING
    return CrowdRead(keys, hosting, _country_mismatch(purchase, info.country))


def crowd_row(purchase: Mapping, ts: int) -> Row:
    """What every key keeps of a purchase: (ts, wallet, card, small amount)."""
    small = int(amount_ref(purchase) <= SMALL_AMOUNT_REF_MINOR)
    return (ts, purchase["wallet"], purchase.get("card_fingerprint") or "", small)


def apply_purchase(store: CrowdStore, purchase: Mapping) -> None:
    """Apply a purchase to its keys (once per purchase id; replay and the replica apply the
    order they read already: ``CrowdStore.apply_order``, the same row made natively)."""
    ts = to_ms(purchase["occurred_at"])
    assert ts is not None
    store.apply_row(purchase["purchase_id"], crowd_row(purchase, ts), crowd_read(purchase).keys)


def crowd_features(out: dict, purchase: Mapping, store: CrowdStore | None, ts: int) -> None:
    """``CROWD_FEATURES`` into ``out`` (``crowd_values`` by name)."""
    out.update(zip(CROWD_FEATURES, crowd_values(purchase, store, ts), strict=True))


def crowd_values(purchase: Mapping, store: CrowdStore | None, ts: int,
                 read: CrowdRead | None = None) -> tuple[float, ...]:
    """``CROWD_FEATURES`` in order. ``store`` None (a caller that keeps no crowd state) reads
    as empty: no crowd seen, the stateless signals (AS, country) still computed.
    ``read``: ``crowd_read(purchase)`` when the caller has it already."""
    read = crowd_read(purchase) if read is None else read
    return (store if store is not None else _EMPTY).values(
        read, purchase["wallet"], ts, purchase.get("card_fingerprint"))


_EMPTY = crowd_store()  # never applied to: every key reads as unseen


def _country_mismatch(purchase: Mapping, ip_country: str | None) -> float:
    geo = purchase.get("geo")
    claimed = (geo or {}).get("country") or purchase.get("card_country")
    if not ip_country or not claimed:
        return MISSING
    return flag(ip_country != str(claimed).upper())
