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
purchase to (``apply_order(order, read)``: that row, of the order read), and ``crowd_features(out, purchase,
store, ts)`` (``crowd_values``: the same as a tuple) reads the rows strictly before the
purchase. Distinct-wallet counts include the purchase's own wallet and saturate at 64. Rates compare the last 10 minutes with the key's own normal rate
(its purchases per 10 minutes over the 24 whole hours before the current one), so a show that
always sells fast is not a crowd, but a tier that suddenly sells to many wallets is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from processors._native import CrowdRead, CrowdReader, PurchaseReader
from processors.crowd_state import SMALL_AMOUNT_REF_MINOR, CrowdStore, Row, crowd_store
from processors.money import amount_ref, unit_price_ref
from processors.netinfo import IpInfo, ip_info, ua_family
from processors.records import ORDER_READER
from processors.signals import MISSING
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


# What the crowd features read of a purchase: ``CrowdRead`` (native, ``crowd_read.rs``) holds
# its key of each kind in ``KINDS`` order (``keys``: None where the purchase gives none: no
# network or AS for its IP, no card BIN) and the two features that need no store
# (``asn_hosting``, ``ip_country_mismatch``), placed in ``CROWD_FEATURES`` by
# ``CrowdStore.values``.
#
# ``crowd_read(purchase, unit_ref=None)``: what the crowd features read of ``purchase``
# (``unit_ref``: see ``price_band``), its IP looked up once (``ip_info``), read with its order
# by every path that applies or scores it: ``show, band = purchase["show_id"],
# price_band(purchase, unit_ref)``, the keys ``f"tier:{show}:{band}"``,
# ``f"coord:{show}:{band}:{int(purchase['quantity'])}"``, ``f"net:{network}"``,
# ``f"asn:{asn}"`` (those two of ``ip_info(purchase.get("ip"))``, when it has them),
# ``f"bin:{card_bin}"`` (when ``purchase.get("card_bin")``),
# ``f"ua:{ua_family(purchase.get('user_agent'))}"``; ``asn_hosting`` 1.0 or 0.0 by the IP's
# AS (MISSING without one); ``ip_country_mismatch`` whether the IP's country differs from
# the geo point's country or else the card's, upper-cased (MISSING when either is absent).
# Read natively (``CrowdReader``, ``processors/native/src/crowd_read.rs``), in those steps
# and that order: the band from ``_BANDS`` (``price_band``'s memo) or ``price_band``.
CROWD_READER = CrowdReader(ip_info=ip_info, ip_info_fields=IpInfo._fields, ua_family=ua_family,
                           price_band=price_band, bands=_BANDS, format=format, missing=MISSING)
crowd_read = CROWD_READER.read
# ``read_purchase(purchase, ts=None)``: a purchase read once for every reader, ``(order,
# crowd)``: ``order = read_order(purchase, ts)`` (``processors.records``) and ``crowd =
# crowd_read(purchase, order.unit)``, in one native call (``PurchaseReader``): what
# ``FeatureEngine`` (natively, ``processors.features.PURCHASES``) and the live entity replica
# read each purchase with.
PURCHASE_READER = PurchaseReader(orders=ORDER_READER, crowds=CROWD_READER)
read_purchase = PURCHASE_READER.read


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
    return (store if store is not None else NO_CROWDS).values(
        read, purchase["wallet"], ts, purchase.get("card_fingerprint"))


NO_CROWDS = crowd_store()  # never applied to: every key reads as unseen
