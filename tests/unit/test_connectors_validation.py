"""Edge validation: what the Avro schemas would reject is refused here, naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connectors.base import ValidationFailed
from connectors.validation import (
    AUTH_EVENT,
    LABEL,
    PURCHASE,
    EventTimeBounds,
    canonical_ip,
    limit_key,
    parse,
)
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


def test_ipv4_mapped_ipv6_becomes_ipv4_once() -> None:
    record = parse(PURCHASE, purchase(1, ip="::ffff:185.220.100.0"), NOW)
    assert record.ip == "185.220.100.0"  # so the Tor list, blocklist and limits see it
    assert canonical_ip("::FFFF:B9DC:6400") == "185.220.100.0"
    assert canonical_ip("2001:DB8:0::1") == "2001:db8::1"


@pytest.mark.parametrize("ip", ["fe80::1%eth0", "fe80::1%1", "::ffff:10.0.0.1%x"])
def test_ipv6_zone_ids_are_refused(ip: str) -> None:
    assert fields(PURCHASE, purchase(1, ip=ip)) == ["ip"]
    auth = {"event_id": "e", "occurred_at": NOW, "kind": "LOGIN_OK", "user_id": "u", "ip": ip}
    assert fields(AUTH_EVENT, auth) == ["ip"]


@pytest.mark.parametrize("bad", ["a\x00b", "a\nb", "a\rb", "a\tb", "\x7f", "\x85",
                                 "pay\u202epal", "\u202a", "\u2066x", "x\u2069", "\u200f"])
@pytest.mark.parametrize("field", ["purchase_id", "user_id", "organizer_id", "show_id",
                                   "ticket_id", "device_id", "card_fingerprint"])
def test_control_and_bidi_characters_are_refused_in_ids(field: str, bad: str) -> None:
    assert fields(PURCHASE, purchase(1, **{field: bad})) == [field]


def test_control_characters_are_refused_in_every_kind() -> None:
    auth = {"event_id": "e\n1", "occurred_at": NOW, "kind": "LOGIN_OK", "user_id": "u\u202e",
            "ip": "10.0.0.1"}  # fmt: skip
    assert fields(AUTH_EVENT, auth) == ["event_id", "user_id"]
    label = {"purchase_id": "p\x00", "occurred_at": NOW, "is_fraud": True, "source": "CHARGEBACK"}
    assert fields(LABEL, label) == ["purchase_id"]
    assert parse(PURCHASE, purchase(1, user_id="ユーザー-é"), NOW).user_id == "ユーザー-é"


def test_per_ip_limits_count_ipv6_by_its_64() -> None:
    assert limit_key("2001:db8:1:2:aaaa::1") == limit_key("2001:db8:1:2:bbbb::9") == (
        "2001:db8:1:2::/64")  # fmt: skip
    assert limit_key("2001:db8:1:3::1") != limit_key("2001:db8:1:2::1")
    assert (limit_key("203.0.113.7"), limit_key("::ffff:203.0.113.7")) == ("203.0.113.7",) * 2
    assert limit_key(None) == limit_key("nonsense") == "unknown"
