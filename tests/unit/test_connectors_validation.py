"""Edge validation: what the Avro schemas would reject is refused here, naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connectors.base import ValidationFailed
from connectors.validation import AUTH_EVENT, LABEL, PURCHASE, EventTimeBounds, parse
from tests.support.records import purchase

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 2, tzinfo=UTC)


def fields(kind, data) -> list[str]:
    with pytest.raises(ValidationFailed) as caught:
        parse(kind, data, NOW)
    return [e.field for e in caught.value.errors]


def test_wallets_currency_country_and_ip_are_normalised_once() -> None:
    record = parse(PURCHASE, purchase(1, wallet="0X" + "AbC1" * 10, currency="usd",
                                      ip="2001:DB8::1", seller_wallet="0x" + "F" * 40,
                                      geo={"lat": 1, "lon": 2, "country": "de"}), NOW)  # fmt: skip
    assert record.wallet == "0x" + "abc1" * 10 and record.seller_wallet == "0x" + "f" * 40
    assert (record.currency, record.ip, record.geo.country) == ("USD", "2001:db8::1", "DE")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"unit_price_minor": -1}, "unit_price_minor"),
        ({"unit_price_minor": 1.5}, "unit_price_minor"),
        ({"quantity": 0}, "quantity"),
        ({"quantity": 101}, "quantity"),
        ({"quantity": True}, "quantity"),
        ({"wallet": "0x" + "a" * 39}, "wallet"),
        ({"wallet": "0x" + "a" * 40 + "\n"}, "wallet"),
        ({"wallet": 12}, "wallet"),
        ({"currency": "EURO"}, "currency"),
        ({"currency": "ABC"}, "currency"),
        ({"currency": "XAF"}, "currency"),  # ISO 4217, but no rate in the rates table
        ({"occurred_at": NOW + timedelta(hours=24, seconds=1)}, "occurred_at"),
        ({"occurred_at": "2026-11-01T00:00:00"}, "occurred_at"),
        ({"occurred_at": 10**20}, "occurred_at"),
        ({"account_created_at": NOW + timedelta(days=2)}, "account_created_at"),
        ({"channel": "primary"}, "channel"),
        ({"payment_method": "CASH"}, "payment_method"),
        ({"ip": "not-an-ip"}, "ip"),
        ({"geo": {"lat": 0, "lon": 181, "country": "DE"}}, "geo.lon"),
        ({"geo": {"lat": 0, "lon": 0, "country": "DEU"}}, "geo.country"),
        ({"user_id": ""}, "user_id"),
        ({"mfa_enabled": "yes"}, "mfa_enabled"),
        ({"extra": 1}, "extra"),
    ],
)
def test_each_bad_purchase_field_is_named(overrides: dict, field: str) -> None:
    assert fields(PURCHASE, purchase(1, **overrides)) == [field]


def test_event_time_within_the_skew_is_accepted_and_epoch_millis_work() -> None:
    ahead = parse(PURCHASE, purchase(1, occurred_at=NOW + timedelta(minutes=5)), NOW)
    millis = parse(PURCHASE, purchase(1, occurred_at=1_793_000_000_000), NOW)
    assert ahead.occurred_at == NOW + timedelta(minutes=5)
    assert millis.to_avro(NOW)["occurred_at"] == 1_793_000_000_000


@pytest.mark.parametrize("ahead", [timedelta(minutes=5, seconds=1), timedelta(hours=23)])
def test_event_time_beyond_the_future_skew_is_refused_naming_the_field(ahead) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse(PURCHASE, purchase(1, occurred_at=NOW + ahead), NOW)
    [error] = caught.value.errors
    assert error.field == "occurred_at" and "ahead" in error.message


def test_event_time_older_than_the_topic_retention_is_refused() -> None:
    old = {"event_id": "e", "occurred_at": NOW - timedelta(days=30, seconds=1),
           "kind": "LOGIN_OK", "user_id": "u", "ip": "10.0.0.1"}  # fmt: skip
    assert fields(AUTH_EVENT, old) == ["occurred_at"]  # auth events are kept 30 days
    assert fields(PURCHASE, purchase(1, occurred_at=NOW - timedelta(days=91))) == ["occurred_at"]
    assert fields(PURCHASE, purchase(1, occurred_at=0)) == ["occurred_at"]
    label = {"purchase_id": "p", "occurred_at": NOW - timedelta(days=200), "is_fraud": True,
             "source": "CHARGEBACK"}  # fmt: skip
    assert parse(LABEL, label, NOW).occurred_at == NOW - timedelta(days=200)  # kept 365 days


def test_event_time_bounds_are_configurable() -> None:
    bounds = EventTimeBounds(max_future=timedelta(hours=1), max_age=timedelta(days=1))
    ahead = purchase(1, occurred_at=NOW + timedelta(minutes=30))
    assert parse(PURCHASE, ahead, NOW, bounds).occurred_at == NOW + timedelta(minutes=30)
    with pytest.raises(ValidationFailed):
        parse(PURCHASE, purchase(1, occurred_at=NOW - timedelta(days=2)), NOW, bounds)


def test_to_avro_sets_ingested_at_and_millis() -> None:
    record = parse(PURCHASE, purchase(1, ingested_at="2020-01-01T00:00:00Z"), NOW)
    avro = record.to_avro(NOW)
    assert avro["ingested_at"] == int(NOW.timestamp() * 1000)
    assert avro["occurred_at"] == int(purchase(1)["occurred_at"].timestamp() * 1000)
    assert avro["geo"] == {"lat": 52.52, "lon": 13.4, "country": "DE"}


def test_missing_fields_json_errors_and_other_kinds() -> None:
    assert fields(PURCHASE, {}) == [
        "purchase_id", "occurred_at", "wallet", "user_id", "organizer_id", "show_id",
        "ticket_id", "quantity", "unit_price_minor", "currency", "channel", "payment_method",
        "ip"]  # fmt: skip
    assert fields(PURCHASE, b"{") == ["body"]
    assert fields(PURCHASE, b"[]") == ["body"]
    assert fields(LABEL, {"purchase_id": "p", "occurred_at": NOW, "is_fraud": 1,
                          "source": "CHARGEBACK"}) == ["is_fraud"]  # fmt: skip
    assert fields(AUTH_EVENT, {"event_id": "e", "occurred_at": NOW, "kind": "LOGIN",
                               "user_id": "u", "ip": "10.0.0.1"}) == ["kind"]  # fmt: skip


def test_record_kinds_pick_keys_and_ids() -> None:
    auth = parse(AUTH_EVENT, {"event_id": "e", "occurred_at": NOW, "kind": "LOGIN_OK",
                              "user_id": "u", "ip": "10.0.0.1"}, NOW)  # fmt: skip
    label = parse(LABEL, {"purchase_id": "p", "occurred_at": NOW, "is_fraud": True,
                          "source": "CHARGEBACK"}, NOW)  # fmt: skip
    assert (AUTH_EVENT.key(auth), AUTH_EVENT.record_id(auth)) == ("u", "e")
    assert (LABEL.key(label), LABEL.natural_key(label)) == ("p", "p:CHARGEBACK")
