"""``read_order`` in native code (``OrderReader``, ``processors/native/src/order.rs``) reads a
purchase as the Python it replaced did (``tests/support/records_reference.py``): the same
``Order`` (values and their types), the same error (type and message) for a bad record, the same
orders remembered by ``processors.money``, and no reference left behind."""

from __future__ import annotations

import sys
from collections import UserDict, defaultdict
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from zoneinfo import ZoneInfo

import pytest

from processors._native import OrderReader
from processors.money import default_rates
from processors.records import Order, read_order
from processors.timeutil import _EPOCH, to_ms
from tests.support import records_reference
from tests.unit.test_processors_crowd import T0, purchase

pytestmark = pytest.mark.unit

TIMES = ("occurred_at", "ingested_at", "sale_opens_at", "account_created_at")


def outcome(read, p, *ts):
    """What a reading gives: the Order's class, fields, values and their types, or the error's
    type and message."""
    try:
        o = read(p, *ts)
    except Exception as exc:  # noqa: BLE001 - the error is the outcome compared
        return ("raised", type(exc), str(exc))
    return ("read", type(o), o._fields, tuple(o), tuple(type(v) for v in o))


def assert_same(p, *ts):
    assert outcome(read_order, p, *ts) == outcome(records_reference.read_order, p, *ts)


def test_a_simulated_fortnight_reads_as_the_reference():
    from models.simulator import SimConfig, simulate

    simulated = [r for k, r in simulate(SimConfig(seed=5, days=14)) if k == "purchase"]
    assert len(simulated) > 5_000
    for p in simulated:
        assert_same(p)
        assert_same(p, to_ms(p["occurred_at"]))


class Utc(datetime):
    """A datetime subclass: converted by ``to_ms`` itself."""


EDGES = [
    # optional fields missing, None or falsy
    dict(geo=None, card_fingerprint=None, device_id=None),
    dict(geo={}, card_bin=None),
    dict(geo={"lat": 0.0, "lon": 0.0, "country": None}),
    dict(geo={"lat": -33.9, "lon": 151.2, "country": "AU", "extra": 1}),
    dict(ingested_at=T0 + timedelta(seconds=2, microseconds=999_999)),
    dict(sale_opens_at=None, account_created_at=None),
    dict(mfa_enabled=None, phone_verified=1, email_verified="yes"),
    dict(mfa_enabled=0, phone_verified=0.0, email_verified=[]),
    # currencies: none (the reference), lower case, no minor unit, three minor digits, unknown
    dict(currency=None),
    dict(currency="usd"),
    dict(currency="JPY", unit_price_minor=999, quantity=7),
    dict(currency="BHD", unit_price_minor=1_234_567, quantity=3),
    dict(currency="MXN", unit_price_minor=100_001, quantity=3),
    dict(currency="XAF"),
    dict(currency=""),
    # huge, small, negative and bool-ish numbers; numbers as text
    dict(unit_price_minor=10**30, quantity=10**6),
    dict(unit_price_minor=-5, quantity=-1),
    dict(unit_price_minor=0, quantity=0),
    dict(unit_price_minor=True, quantity=True),
    dict(unit_price_minor="6500", quantity="2"),
    dict(unit_price_minor=6500.9, quantity=2.5),
    dict(unit_price_minor="6.5"),
    dict(quantity=None),
    # timestamps: other zones, naive, ints, bools, subclasses, the calendar's ends
    dict(occurred_at=T0.astimezone(timezone(timedelta(hours=5, minutes=30)))),
    dict(occurred_at=T0.replace(tzinfo=timezone(timedelta(0)))),
    dict(occurred_at=T0.replace(tzinfo=timezone(-timedelta(hours=23, minutes=59)))),
    dict(sale_opens_at=datetime(2026, 3, 29, 1, 30, tzinfo=ZoneInfo("Europe/London"))),
    dict(
        account_created_at=datetime(2026, 10, 25, 1, 30, fold=1, tzinfo=ZoneInfo("Europe/London"))
    ),
    dict(occurred_at=T0.replace(fold=1)),
    dict(occurred_at=T0.replace(tzinfo=None)),
    dict(ingested_at=T0.replace(tzinfo=None)),
    dict(sale_opens_at=datetime(2026, 1, 1)),  # noqa: DTZ001 - naive on purpose
    dict(account_created_at=datetime(1969, 12, 31, 23, 59, 59, 999_999)),  # noqa: DTZ001
    dict(occurred_at=1_700_000_000_123, ingested_at=-1, sale_opens_at=0),
    dict(occurred_at=2**70),
    dict(occurred_at=True),
    dict(ingested_at=False),
    dict(sale_opens_at=1.5e12),
    dict(account_created_at="2026-11-01T12:00:00Z"),
    dict(occurred_at=Utc(2026, 11, 1, 12, 0, 0, 500, tzinfo=UTC)),
    dict(occurred_at=datetime(1, 1, 1, tzinfo=UTC)),
    dict(occurred_at=datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)),
    dict(account_created_at=datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)),
    dict(account_created_at=datetime(1969, 12, 31, 23, 59, 59, 1_000, tzinfo=UTC)),
    dict(sale_opens_at=datetime(1970, 1, 1, 0, 0, 0, 999, tzinfo=UTC)),
    dict(sale_opens_at=datetime(2000, 2, 29, 23, 59, 59, 999_000, tzinfo=UTC)),
    dict(occurred_at=None),
    # other types where a str is expected are kept as they are
    dict(purchase_id=7, wallet=None, show_id=("s",), ip=b"1.2.3.4", channel=1.0),
]


@pytest.mark.parametrize("over", EDGES, ids=range(len(EDGES)))
def test_an_edge_record_reads_or_fails_as_the_reference(over):
    p = purchase(3, T0, **over)
    assert_same(p)
    assert_same(p, 12_345)
    assert_same(p, None)


def test_a_naive_datetime_is_refused_with_to_ms_message():
    for field in TIMES:
        naive = T0.replace(tzinfo=None)
        with pytest.raises(ValueError) as raised:
            read_order(purchase(1, T0, **{field: naive}))
        assert str(raised.value) == (
            f"naive datetime {naive.isoformat()} (expected timezone-aware UTC)"
        ), field


def test_every_utc_millisecond_of_a_day_boundary_converts_as_to_ms():
    base = datetime(2026, 12, 31, 23, 59, 58, tzinfo=UTC)
    for step in range(0, 3_000_000, 997):
        at = base + timedelta(microseconds=step)
        assert read_order(purchase(1, at)).ts == records_reference.to_ms(at)
    for days in range(-718_000, 2_900_000, 12_345):
        at = _EPOCH + timedelta(days=days, microseconds=days % 1_000_000)
        assert read_order(purchase(1, at)).ts == records_reference.to_ms(at)


def test_datetimes_read_in_place_convert_as_to_ms_in_every_time_field():
    """A UTC datetime's ms are read from its fields in place (``RawDateTime``): the same as
    ``to_ms`` on random times over datetime's whole range, around every leap-year rule's
    February and each month's end, in each of the four time fields; a datetime in another
    UTC-like zone (not ``datetime.UTC`` itself) still goes to ``to_ms``."""
    import random

    rng = random.Random(8)
    span_us = (datetime.max.replace(tzinfo=UTC) - datetime.min.replace(tzinfo=UTC)) // timedelta(
        microseconds=1)
    times = [datetime.min.replace(tzinfo=UTC) + timedelta(microseconds=rng.randrange(span_us))
             for _ in range(3_000)]
    for year in (1, 4, 100, 400, 1600, 1700, 1900, 1969, 1970, 2000, 2024, 2100, 2400, 9999):
        for month in range(1, 13):
            first = datetime(year, month, 1, tzinfo=UTC)
            times += [first, first + timedelta(microseconds=999)]
            if (year, month) != (1, 1):
                times.append(first - timedelta(microseconds=1))
    times += [datetime(2026, 1, 2, 3, 4, 5, 6_007, tzinfo=timezone(timedelta(0))),
              datetime(2026, 1, 2, 3, 4, 5, 6_007, tzinfo=timezone(timedelta(hours=-5)))]
    for at in times:
        expected = records_reference.to_ms(at)
        o = read_order(purchase(1, T0, occurred_at=at, ingested_at=at, sale_opens_at=at,
                                account_created_at=at))
        assert (o.ts, o.ingested_ms, o.sale_opens_ms, o.account_created_ms) == (expected,) * 4, at


def test_missing_fields_raise_the_first_key_error_python_raised():
    full = purchase(1, T0)
    for name in full:
        p = {k: v for k, v in full.items() if k != name}
        assert_same(p)
        assert_same(p, 5)


class Lookup(UserDict):
    """A mapping that is not a dict."""


def test_other_mappings_are_read_through_their_own_methods():
    p = purchase(2, T0)
    assert_same(Lookup(p))
    assert_same(MappingProxyType(p))
    # a dict subclass's ``__missing__`` answers ``p[name]`` as in Python
    missing = defaultdict(lambda: "filled", {k: v for k, v in p.items() if k != "channel"})
    assert_same(missing)
    assert read_order(missing).channel == "filled"
    assert_same(Lookup({k: v for k, v in p.items() if k != "wallet"}))


def test_the_orders_remembered_are_those_python_remembered():
    memo = default_rates()._orders
    saved = dict(memo)
    try:
        records = [
            purchase(
                k,
                T0,
                unit_price_minor=1000 + k % 7,
                quantity=1 + k % 3,
                currency=("EUR", "JPY", None)[k % 3],
            )
            for k in range(60)
        ]
        memo.clear()
        for p in records:
            records_reference.read_order(p)
        remembered = dict(memo)
        memo.clear()
        for p in records:
            read_order(p)
        assert memo == remembered
        assert list(memo) == list(remembered)
        # a remembered order is read from the memo: the same pair objects
        for p in records:
            o = read_order(p)
            pair = memo[(p["unit_price_minor"], p["quantity"], p["currency"])]
            assert o.amount is pair[0] and o.unit is pair[1]
    finally:
        memo.clear()
        memo.update(saved)


def test_the_reader_holds_the_record_own_objects():
    p = purchase(4, T0)
    o = read_order(p)
    for name, field in (
        ("purchase_id", "purchase_id"),
        ("wallet", "wallet"),
        ("card", "card_fingerprint"),
        ("ip", "ip"),
        ("device", "device_id"),
        ("mfa_enabled", "mfa_enabled"),
    ):
        assert getattr(o, name) is p[field]
    assert o.lat is p["geo"]["lat"] and o.country is p["geo"]["country"]


def test_a_reader_refuses_another_order_layout():
    kwargs = dict(
        datetime=datetime,
        utc=UTC,
        epoch=_EPOCH,
        to_ms=to_ms,
        default_rates=default_rates,
        order_ref_minor=lambda *a: (0, 0),
    )
    with pytest.raises(ValueError, match="Order fields"):
        OrderReader(order=Order, order_fields=Order._fields[::-1], **kwargs)
    with pytest.raises(TypeError, match="tuple subclass"):
        OrderReader(order=dict, order_fields=Order._fields, **kwargs)


def test_reading_leaks_nothing():
    good = [
        purchase(k, T0 + timedelta(seconds=k), currency=("EUR", "JPY", "USD")[k % 3])
        for k in range(50)
    ]
    bad = [
        purchase(1, T0, currency="XAF"),
        purchase(1, T0.replace(tzinfo=None)),
        {k: v for k, v in purchase(1, T0).items() if k != "ip"},
        purchase(1, T0, occurred_at=None),
        Lookup(purchase(1, T0)),
        purchase(1, T0, sale_opens_at=T0.astimezone(timezone(timedelta(hours=-3)))),
    ]

    def round_of_reads():
        for p in good:
            read_order(p)
            read_order(p, 7)
        for p in bad:
            try:
                read_order(p)
            except (ValueError, KeyError, AssertionError):
                pass

    for _ in range(200):  # warm: caches, interned names, the memo
        round_of_reads()
    before = sys.getallocatedblocks()
    for _ in range(2_000):
        round_of_reads()
    assert sys.getallocatedblocks() - before < 50
