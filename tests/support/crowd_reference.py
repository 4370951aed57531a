"""``processors.crowd`` as it named a purchase's keys before ``crowd_read`` (frozen, do not
edit): ``crowd_keyed`` (a dict of keys by kind, the IP looked up for it), the two crowd
features ``crowd_values`` computed without the store, from a second ``ip_info`` of the same
IP (``stateless``), and ``order_crowd_row``, the row ``CrowdStore.apply_order`` now makes
natively. ``tests/unit/test_crowd_read.py`` holds ``crowd_read`` and ``apply_order`` to them."""

from __future__ import annotations

from collections.abc import Mapping

from processors.crowd import price_band
from processors.crowd_state import Row
from processors.netinfo import ip_info, ua_family
from processors.records import Order
from processors.signals import MISSING, flag

SMALL_AMOUNT_REF_MINOR = 500  # a card-testing probe: 5.00 USD or less (FeatureConfig's value)


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


def stateless(purchase: Mapping) -> tuple[float, float]:
    """(asn_hosting, ip_country_mismatch) as ``crowd_values`` computed them."""
    info = ip_info(purchase.get("ip"))
    return ((1.0 if info.hosting else 0.0) if info.asn else MISSING,
            _country_mismatch(purchase, info.country))


def _country_mismatch(purchase: Mapping, ip_country: str | None) -> float:
    geo = purchase.get("geo")
    claimed = (geo or {}).get("country") or purchase.get("card_country")
    if not ip_country or not claimed:
        return MISSING
    return flag(ip_country != str(claimed).upper())


def order_crowd_row(o: Order) -> Row:
    """``crowd_row`` of a purchase already read (``processors.records.read_order``)."""
    return (o.ts, o.wallet, o.card or "", int(o.amount <= SMALL_AMOUNT_REF_MINOR))
