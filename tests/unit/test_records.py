"""``read_order`` reads a purchase as the plain ``Order(...)`` of each field converted by
itself (``to_ms``, ``ref_minor``): the same values, types and field names."""

from __future__ import annotations

from datetime import timedelta

import pytest

from processors.money import UnknownCurrencyError, ref_minor
from processors.records import Order, read_order
from processors.timeutil import to_ms
from tests.unit.test_processors_crowd import T0, purchase

pytestmark = pytest.mark.unit


def reference(p: dict) -> Order:
    """The reading field by field, as ``read_order`` was first written."""
    unit_price, quantity, geo = int(p["unit_price_minor"]), int(p["quantity"]), p.get("geo")
    return Order(
        ts=to_ms(p["occurred_at"]),  # type: ignore[arg-type]
        ingested_ms=to_ms(p.get("ingested_at")),
        purchase_id=p["purchase_id"],
        wallet=p["wallet"],
        show_id=p["show_id"],
        ticket_id=p["ticket_id"],
        channel=p["channel"],
        quantity=quantity,
        amount=ref_minor(unit_price * quantity, p.get("currency")),
        unit=ref_minor(unit_price, p.get("currency")),
        payment_method=p["payment_method"],
        card=p.get("card_fingerprint"),
        ip=p["ip"],
        device=p.get("device_id"),
        geo=bool(geo),
        lat=geo["lat"] if geo else None,
        lon=geo["lon"] if geo else None,
        country=geo["country"] if geo else None,
        sale_opens_ms=to_ms(p.get("sale_opens_at")),
        account_created_ms=to_ms(p.get("account_created_at")),
        mfa_enabled=p.get("mfa_enabled"),
        phone_verified=p.get("phone_verified"),
        email_verified=p.get("email_verified"),
    )


def test_read_order_is_the_field_by_field_reading():
    from models.simulator import SimConfig, simulate

    simulated = [r for k, r in simulate(SimConfig(seed=3, days=1)) if k == "purchase"][:400]
    edges = [
        purchase(1, T0, geo=None, card_fingerprint=None, device_id=None),
        purchase(2, T0, ingested_at=T0 + timedelta(seconds=2), currency=None),
        purchase(3, T0, unit_price_minor=100_001, quantity=3, currency="MXN"),
        purchase(
            4,
            T0,
            unit_price_minor=999,
            quantity=7,
            currency="JPY",
            sale_opens_at=None,
            account_created_at=None,
        ),
    ]
    for p in simulated + edges:
        read = read_order(p)
        assert type(read) is Order
        assert read._asdict() == reference(p)._asdict()
        assert [type(v) for v in read] == [type(v) for v in reference(p)]
        # the event time given by a caller that converted it already (the entity replica)
        given = read_order(p, to_ms(p["occurred_at"]))
        assert type(given) is Order
        assert given._asdict() == reference(p)._asdict()
        assert [type(v) for v in given] == [type(v) for v in reference(p)]


def test_read_order_raises_what_the_conversions_raise():
    with pytest.raises(UnknownCurrencyError):
        read_order(purchase(1, T0, currency="XAF"))
    with pytest.raises(ValueError, match="naive"):
        read_order(purchase(1, T0.replace(tzinfo=None)))


def test_read_order_given_no_event_time_converts_and_checks_it():
    with pytest.raises(ValueError, match="naive"):
        read_order(purchase(1, T0.replace(tzinfo=None)), None)
    with pytest.raises(AssertionError):
        read_order(purchase(1, T0, occurred_at=None), None)
