"""``read_order`` as Python computed it before it moved to native code
(``processors/native/src/order.rs``, ``OrderReader``): a frozen copy of
``processors/records.py``'s ``read_order`` and ``processors/timeutil.py``'s ``to_ms`` as of
commit 008c156. Do not change it: it is what ``tests/unit/test_native_order.py`` holds the
native reading to (values, types, errors).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from processors.money import order_ref_minor
from processors.records import Order

SECOND_MS = 1_000
DAY_MS = 24 * 60 * 60 * SECOND_MS
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def to_ms(value: datetime | int | None) -> int | None:
    if type(value) is datetime:  # the common case first (the Avro decoder's type)
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} (expected timezone-aware UTC)")
        delta = value - _EPOCH
        return delta.days * DAY_MS + delta.seconds * SECOND_MS + delta.microseconds // 1_000
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} (expected timezone-aware UTC)")
        return (value - _EPOCH) // _ONE_MS
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"timestamp must be a datetime or int ms, got {type(value).__name__}")
    return value


def read_order(p: Mapping[str, Any], ts: int | None = None) -> Order:
    get = p.get
    if ts is None:
        ts = to_ms(p["occurred_at"])
        assert ts is not None
    unit_price, currency = int(p["unit_price_minor"]), get("currency")
    quantity = int(p["quantity"])
    geo = get("geo")
    return _make_order(Order, (
        ts, to_ms(get("ingested_at")), p["purchase_id"], p["wallet"], p["show_id"],
        p["ticket_id"], p["channel"], quantity, *order_ref_minor(unit_price, quantity, currency),
        p["payment_method"], get("card_fingerprint"), p["ip"], get("device_id"), bool(geo),
        geo["lat"] if geo else None, geo["lon"] if geo else None,
        geo["country"] if geo else None,
        to_ms(get("sale_opens_at")), to_ms(get("account_created_at")),
        get("mfa_enabled"), get("phone_verified"), get("email_verified"),
    ))  # fmt: skip


_make_order = tuple.__new__
