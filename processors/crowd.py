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
(``crowd_values``: the same as a tuple) reads the rows strictly before the purchase. Distinct-wallet counts include the purchase's own
wallet and saturate at 64. Rates compare the last 10 minutes with the key's own normal rate
(its purchases per 10 minutes over the 24 whole hours before the current one), so a show that
always sells fast is not a crowd, but a tier that suddenly sells to many wallets is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from operator import itemgetter

from processors.crowd_state import CrowdState, CrowdStore, Row
from processors.money import amount_ref, unit_price_ref
from processors.netinfo import ip_info, ua_family
from processors.records import Order
from processors.signals import MISSING, flag
from processors.timeutil import HOUR_MS, MINUTE_MS

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
    show, band = purchase["show_id"], price_band(purchase, unit_ref)
    info = ip_info(purchase.get("ip"))
    keys = {"tier": f"tier:{show}:{band}",
            "coord": f"coord:{show}:{band}:{int(purchase['quantity'])}"}
    if info.network:
        keys["net"] = f"net:{info.network}"
    if info.asn:
        keys["asn"] = f"asn:{info.asn}"
    if purchase.get("card_bin"):
        keys["bin"] = f"bin:{purchase['card_bin']}"
    keys["ua"] = f"ua:{ua_family(purchase.get('user_agent'))}"
    return keys


def crowd_row(purchase: Mapping, ts: int) -> Row:
    """What every key keeps of a purchase: (ts, wallet, card, small amount)."""
    small = int(amount_ref(purchase) <= SMALL_AMOUNT_REF_MINOR)
    return (ts, purchase["wallet"], purchase.get("card_fingerprint") or "", small)


def order_crowd_row(o: Order) -> Row:
    """``crowd_row`` of a purchase already read (``processors.records.read_order``)."""
    return (o.ts, o.wallet, o.card or "", int(o.amount <= SMALL_AMOUNT_REF_MINOR))


_WALLET = itemgetter(1)


def crowd_store() -> CrowdStore:
    return CrowdStore(crowd_keys, crowd_row)


def rate_ratio(state: CrowdState | None, ts: int) -> float:
    """(purchases in the 10 min before ``ts`` + 1) / (normal purchases per 10 min over the 24
    whole hours before this one + 1): 1 is the usual pace, 10 ten times it."""
    if state is None:
        return 1.0
    return (state.count_between(ts - RECENT_MS, ts) + 1) / _pace(state, ts)


def _pace(state: CrowdState, ts: int) -> float:
    """Normal purchases per 10 min over the 24 whole hours before ``ts``'s hour, + 1."""
    return state.hourly_before(ts // HOUR_MS, 24) / (24 * 6) + 1


def _wallets(state: CrowdState | None, me: str, lo: int, ts: int) -> float:
    return _distinct(state.between(lo, ts) if state is not None else (), me)


def _distinct(rows, me: str) -> float:
    """Distinct wallets among ``rows`` and ``me``, capped."""
    seen = set(map(_WALLET, rows))
    seen.add(me)
    n = len(seen)
    return float(n if n < WALLETS_CAP else WALLETS_CAP)


def _tier_values(state: CrowdState | None, me: str, lo: int, ts: int) -> tuple[float, float]:
    """tier_wallets_10m and tier_rate_ratio (``_wallets`` and ``rate_ratio`` over the same
    10 minutes, read once)."""
    if state is None:
        return 1.0, 1.0
    rows = state.between(lo, ts)
    return _distinct(rows, me), (len(rows) + 1) / _pace(state, ts)


def crowd_features(out: dict, purchase: Mapping, states: Mapping[str, CrowdState | None] | None,
                   ts: int) -> None:
    """``CROWD_FEATURES`` into ``out`` (``crowd_values`` by name)."""
    out.update(zip(CROWD_FEATURES, crowd_values(purchase, states, ts), strict=True))


def crowd_values(purchase: Mapping, states: Mapping[str, CrowdState | None] | None, ts: int,
                 keyed: Mapping[str, str] | None = None) -> tuple[float, ...]:
    """``CROWD_FEATURES`` in order. ``states`` None (a caller that keeps no crowd state) reads
    as empty states: no crowd seen, the stateless signals (AS, country) still computed.
    ``keyed``: ``crowd_keyed(purchase)`` when the caller has it already."""
    keyed = crowd_keyed(purchase) if keyed is None else keyed
    get = states.get if states else _NO_STATES.get
    key_of = keyed.get
    tier, net, asn, card_bin = get(keyed["tier"]), key_of("net"), key_of("asn"), key_of("bin")
    me, info, recent = purchase["wallet"], ip_info(purchase.get("ip")), ts - RECENT_MS
    return (
        *_tier_values(tier, me, recent, ts),
        _wallets(get(keyed["coord"]), me, recent, ts),
        _wallets(get(net), me, ts - HOUR_MS, ts) if net else MISSING,
        rate_ratio(get(asn), ts) if asn else MISSING,
        (1.0 if info.hosting else 0.0) if info.asn else MISSING,
        _country_mismatch(purchase, info.country),
        *(_bin_values(purchase, get(card_bin), ts) if card_bin else _NO_BIN),
        rate_ratio(get(keyed["ua"]), ts),
    )


_NO_STATES: dict[str, CrowdState] = {}
_NO_BIN = (MISSING, MISSING, MISSING)  # no card_bin: bin_wallets_1h, bin_cards_1h, bin_small_1h


def _country_mismatch(purchase: Mapping, ip_country: str | None) -> float:
    geo = purchase.get("geo")
    claimed = (geo or {}).get("country") or purchase.get("card_country")
    if not ip_country or not claimed:
        return MISSING
    return flag(ip_country != str(claimed).upper())


def _bin_values(p: Mapping, state: CrowdState | None, ts: int) -> tuple[float, float, float]:
    """bin_wallets_1h, bin_cards_1h, bin_small_1h of a purchase that names its card_bin."""
    rows = state.between(ts - HOUR_MS, ts) if state is not None else []
    cards = {r[2] for r in rows if r[2]} | ({p["card_fingerprint"]} if p.get(
        "card_fingerprint") else set())
    return (float(min(len({r[1] for r in rows} | {p["wallet"]}), WALLETS_CAP)),
            float(min(len(cards), WALLETS_CAP)), float(sum(r[3] for r in rows)))
