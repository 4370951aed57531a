"""The native wallet and order features (``WalletFeatures.row``) are the Python functions they
replaced (``tests/support/wallet_reference.py``), to the bit, on hand-built states at the
edges of every window and rule, and raise where Python raised; a simulation compares every
purchase."""

from __future__ import annotations

import math
import random
import struct

import pytest

from models.simulator import SimConfig, simulate
from processors.apply import DEFAULT_CONFIG, FeatureConfig
from processors.compute import FEATURE_NAMES, wallet_features
from processors.crowd import CROWD_FEATURES, CrowdRead, crowd_read, crowd_store, crowd_values
from processors.entity_state import entity_store
from processors.features import FeatureEngine, LateEventError
from processors.records import Order, read_order
from processors.signals import MISSING
from processors.state import GeoPoint, Holding, PurchaseFact, ResaleFact, WalletState
from processors.timeutil import DAY_MS, HOUR_MS, MINUTE_MS
from tests.support.wallet_reference import reference_row

pytestmark = pytest.mark.unit

T = 1_780_000_000_000  # the purchase's event time (ms)
NAMES = FEATURE_NAMES[: FEATURE_NAMES.index("email_verified") + 1]
NO_MARKS = (0.0, 0.0, 0.0, 0.0, 0.0, MISSING)  # processors.marks: no mark anywhere


def order(**fields) -> Order:
    base = dict(ts=T, ingested_ms=None, purchase_id="p-1", wallet="0xw", show_id="show-1",
                ticket_id="t-1", channel="PRIMARY", quantity=2, amount=10_000, unit=5_000,
                payment_method="card", card="card-1", ip="10.0.0.1", device="dev-1",
                geo=True, lat=52.52, lon=13.405, country="DE", sale_opens_ms=None,
                account_created_ms=T - 30 * DAY_MS, mfa_enabled=True, phone_verified=None,
                email_verified=0)  # fmt: skip
    base.update(fields)
    return Order(**base)  # type: ignore[arg-type]


def wallet_row(reader, o: Order, wallet: WalletState, entities) -> tuple[float, ...]:
    """``WalletFeatures.row`` up to ``email_verified`` (the values compared here; the crowd
    and mark values that follow are ``test_the_row_ends_with_the_crowd_and_mark_values``')."""
    read = CrowdRead(("tier:s:1", "coord:s:1:1", None, None, None, "ua:none"), MISSING, MISSING)
    return reader.row(o, wallet, entities, crowd_store(), read, NO_MARKS)[: len(NAMES)]


def fact(
    ts: int,
    show_id: str = "show-1",
    amount: int = 10_000,
    quantity: int = 2,
    card: str | None = "card-1",
    ip: str = "10.0.0.1",
    device: str | None = "dev-1",
    country: str | None = "DE",
    payment_method: str = "card",
) -> PurchaseFact:
    return PurchaseFact(ts, show_id, amount, quantity, payment_method, card, None, None,
                        country, ip, device, "PRIMARY")  # fmt: skip


def bits(values) -> list[bytes]:
    return [struct.pack("<d", v) for v in values]


def both(
    o: Order, wallet: WalletState, config: FeatureConfig = DEFAULT_CONFIG, entities=None
) -> dict[str, float]:
    """The native row, after checking it is the reference's bit for bit."""
    entities = entity_store() if entities is None else entities
    native = wallet_row(wallet_features(config), o, wallet, entities)
    assert bits(native) == bits(reference_row(o, wallet, entities, config))
    return dict(zip(NAMES, native, strict=True))


def test_a_new_wallet_has_no_history_and_counts_only_this_purchase():
    f = both(order(), WalletState())
    assert f["velocity_24h"] == 0.0 and f["secs_since_last_purchase"] == -1.0
    assert f["amount_vs_avg"] == -1.0 and f["new_country"] == -1.0
    assert [f[n] for n in ("distinct_shows_24h", "cards_24h", "devices_24h")] == [1.0] * 3
    assert f["wallet_age_days"] == 0.0 and f["account_age_days"] == 30.0
    assert f["log_amount"] == math.log1p(10_000) and f["mfa_enabled"] == 1.0
    assert f["phone_verified"] == 0.0 and f["email_verified"] == 0.0


def test_history_older_than_7_days_is_not_history_but_the_totals_are():
    wallet = WalletState(
        purchases=[fact(T - 7 * DAY_MS), fact(T - 8 * DAY_MS)],
        purchases_total=9,
        amount_total_minor=77_777,
        last_purchase_ms=T - 7 * DAY_MS,
        first_seen_ms=T - 40 * DAY_MS,
    )
    f = both(order(), wallet)
    assert f["velocity_24h"] == 0.0 and f["show_tickets_7d"] == 0.0
    assert f["secs_since_last_purchase"] == 7 * 86_400.0
    assert f["purchases_total"] == 9.0 and f["amount_vs_avg"] == 10_000 / (77_777 / 9)
    assert f["wallet_age_days"] == 40.0


def test_windows_are_half_open_and_rows_after_the_purchase_are_not_counted():
    rows = [
        fact(T - 7 * DAY_MS + 1, show_id="s-old", country="FR"),
        fact(T - DAY_MS),
        fact(T - DAY_MS + 1, amount=400, card=None),
        fact(T - HOUR_MS),
        fact(T - HOUR_MS + 1, amount=500, device="dev-2"),
        fact(T - 10 * MINUTE_MS),
        fact(T - 10 * MINUTE_MS + 1),
        fact(T),
        fact(T + 1, show_id="later", card="card-later"),
        fact(T + HOUR_MS, amount=1),
    ]
    wallet = WalletState(purchases=rows, purchases_total=10, amount_total_minor=80_000)
    f = both(order(), wallet)
    assert f["velocity_1h"] == 4.0 and f["velocity_24h"] == 6.0 and f["small_probes_1h"] == 1.0
    assert f["duplicates_10m"] == 2.0 and f["secs_since_last_purchase"] == 0.0
    assert f["distinct_shows_24h"] == 1.0 and f["cards_24h"] == 1.0 and f["devices_24h"] == 2.0
    assert f["show_tickets_7d"] == 14.0 and f["new_country"] == 0.0


def test_absent_card_device_geo_and_country_in_the_order_and_the_rows():
    rows = [fact(T - HOUR_MS, card=None, device=None, country=None), fact(T - 2 * HOUR_MS)]
    wallet = WalletState(purchases=rows, geo_points=[GeoPoint(T - HOUR_MS, 48.85, 2.35, "FR")])
    o = order(card=None, device=None, geo=False, lat=None, lon=None, country=None)
    f = both(o, wallet)
    assert f["cards_24h"] == 1.0 and f["devices_24h"] == 1.0 and f["countries_24h"] == 1.0
    assert f["new_country"] == -1.0 and f["new_device"] == -1.0
    assert f["geo_distance_km"] == -1.0 and f["wallets_per_card_24h"] == -1.0
    f = both(
        order(card=None, device=None),
        WalletState(purchases=[fact(T - 1, card=None, device=None, country=None)]),
    )
    assert f["cards_24h"] == 0.0 and f["devices_24h"] == 0.0 and f["new_country"] == -1.0


@pytest.mark.parametrize(
    ("seen", "new"), [(T - 90 * DAY_MS, 1.0), (T - 90 * DAY_MS + 1, 0.0), (T + 1, 0.0), (None, 1.0)]
)
def test_a_device_seen_exactly_90_days_ago_is_new_again(seen, new):
    devices = {} if seen is None else {"dev-1": seen}
    assert both(order(), WalletState(devices=devices))["new_device"] == new


@pytest.mark.parametrize(
    ("login", "fails"),
    [(T - HOUR_MS, 0.0), (T - HOUR_MS + 1, 3.0), (T, 3.0), (T + 1, 0.0), (None, 0.0)],
)
def test_logins_exactly_an_hour_ago_are_outside_the_hour(login, fails):
    wallet = WalletState(failed_logins=[T - HOUR_MS, T - HOUR_MS + 1, T - 5, T, T + 1],
                         mfa_failures=[T - 2 * HOUR_MS, T - 1], login_ok_ms=login,
                         fails_before_login_ok=3, password_changed_ms=T - 1_500,
                         email_changed_ms=T + 5)  # fmt: skip
    f = both(order(), wallet)
    assert f["failed_logins_1h"] == 3.0 and f["mfa_failures_1h"] == 1.0
    assert f["fails_before_login_ok"] == fails
    assert f["secs_since_password_change"] == 1.5 and f["secs_since_email_change"] == -1.0


def test_resales_with_unknown_hold_or_flip_and_the_30_day_window():
    resales = [
        ResaleFact(T - 30 * DAY_MS, 5 * HOUR_MS, 1),
        ResaleFact(T - DAY_MS, -1, 7 * MINUTE_MS),
        ResaleFact(T - HOUR_MS, 3 * HOUR_MS, -1),
        ResaleFact(T - 1, 4 * HOUR_MS + 1, 90 * MINUTE_MS + 1),
        ResaleFact(T + 1, 0, 0),
    ]
    wallet = WalletState(
        resales=resales,
        wash_cycles=[T - 30 * DAY_MS, T - 3, T, T + 9],
        sent={"t-1": T},
        holdings={"a": Holding(T, 1), "b": Holding(T, -1)},
    )
    f = both(order(channel="RESALE"), wallet)
    assert f["resales_30d"] == 3.0 and f["avg_hold_time_h"] == (7 * HOUR_MS + 1) / 2 / HOUR_MS
    assert f["wallet_min_flip_min"] == 7.0 and f["wash_cycles_30d"] == 2.0
    assert f["ticket_previously_held"] == 1.0 and f["holdings_count"] == 2.0
    assert f["is_resale"] == 1.0 and f["mint_to_resale_min"] == -1.0
    only_unknown = WalletState(resales=[ResaleFact(T - 1, -1, -1)], sent={"t-1": T + 1})
    f = both(order(), only_unknown)
    assert (f["avg_hold_time_h"], f["wallet_min_flip_min"], f["resales_30d"]) == (-1.0, -1.0, 1.0)
    assert f["ticket_previously_held"] == 0.0


@pytest.mark.parametrize("amount", [2**53 + 1, 2**63 + 5, 10**30 + 7, 2**100 - 1, 1, 0])
def test_big_amounts_convert_and_divide_as_python_does(amount):
    rows = [
        fact(T - 60_000, amount=int(float(amount)), quantity=3),
        fact(T - 30_000, amount=2**70 + 1, quantity=2**64),
        fact(T - 1, amount=amount),
    ]
    wallet = WalletState(purchases=rows, purchases_total=7, amount_total_minor=2**60 + 3)
    f = both(order(amount=amount, quantity=3), wallet)
    assert f["amount_minor"] == float(amount)
    assert f["amount_24h_minor"] == float(int(float(amount)) + 2**70 + 1 + amount)
    assert f["amount_vs_avg"] == float(amount) / ((2**60 + 3) / 7)
    assert f["duplicates_10m"] == 1.0


def test_large_ages_divide_as_python_does():
    wallet = WalletState(first_seen_ms=-(2**60) + 1, last_purchase_ms=-(2**62) - 3)
    f = both(order(account_created_ms=-(2**59)), wallet)
    assert f["wallet_age_days"] == (T + 2**60 - 1) / DAY_MS
    assert f["secs_since_last_purchase"] == (T + 2**62 + 3) / 1_000


def test_non_ascii_ids_and_unpaired_surrogates_are_distinct_values_as_in_a_python_set():
    rows = [
        fact(T - 3, show_id="Konzert–Ø 東京", card="\ud800", device="📱", country="ÅL"),
        fact(
            T - 2,
            show_id="Konzert–Ø 東京",
            card="\ud801",
            device="📱",
            ip="::1",
            payment_method="\udfff",
        ),
        fact(
            T - 1,
            show_id="konzert–ø 東京",
            card="\ud800",
            country="\ud800",
            payment_method="\udffe",
        ),
    ]
    o = order(
        show_id="Konzert–Ø 東京",
        card="카드",
        device="📱",
        country="\ud800",
        ip="::1",
        payment_method="\udfff",
    )
    f = both(o, WalletState(purchases=rows, devices={"📱": T - 1}))
    assert f["distinct_shows_24h"] == 2.0 and f["cards_24h"] == 3.0
    assert f["payment_methods_24h"] == 3.0 and f["devices_24h"] == 2.0 and f["ips_24h"] == 2.0
    assert f["countries_24h"] == 3.0 and f["new_country"] == 0.0
    assert f["show_tickets_7d"] == 4.0 and f["new_device"] == 0.0


def test_an_unpaired_surrogate_in_an_id_the_entity_store_reads_is_refused_by_both():
    o = order(card="\udfff")
    with pytest.raises(TypeError) as python:
        reference_row(o, WalletState(), entity_store())
    with pytest.raises(TypeError) as native:
        wallet_row(wallet_features(), o, WalletState(), entity_store())
    assert (
        str(native.value)
        == str(python.value)
        == "argument 'o': failed to extract field OrderIn.card"
    )
    assert isinstance(native.value.__cause__, UnicodeEncodeError)


@pytest.mark.parametrize(
    ("prev", "lat", "lon"),
    [
        (GeoPoint(T - DAY_MS, 48.85, 2.35, "FR"), 52.52, 13.405),  # exactly 24 h: too old
        (GeoPoint(T - DAY_MS + 1, 48.85, 2.35, "FR"), 52.52, 13.405),
        (GeoPoint(T - 30_000, 40.71, -74.0, "US"), 35.68, 139.69),  # gap below min_travel_ms
        (GeoPoint(T - 2 * HOUR_MS, -33.87, 151.21, "AU"), 51.5, -0.12),  # far, not within 1 h
        (GeoPoint(T, 10.0, 179.9, "FJ"), -10.0, -179.9),  # across the antimeridian, no gap
        (GeoPoint(T - 1, 0.1, 0.1, "XX"), 0.1 + 1e-12, 0.1),  # a tiny distance
        (GeoPoint(T - 1, 90.0, 0.0, "XX"), -90.0, 180.0),  # antipodes
        (GeoPoint(T - 1, 12.0, 34.0, "XX"), 12, 34),  # int coordinates in the order
    ],
)
def test_geo_velocity_is_python_haversine_to_the_bit(prev, lat, lon):
    later = GeoPoint(T + 1, 0.0, 0.0, "ZZ")  # after the purchase: never the previous point
    wallet = WalletState(geo_points=[GeoPoint(T - 3 * DAY_MS, 1.0, 1.0, "A"), prev, later])
    f = both(order(lat=lat, lon=lon), wallet)
    assert (f["geo_distance_km"] == -1.0) == (prev.ts_ms <= T - DAY_MS)


def test_impossible_travel_and_a_zero_travel_floor_under_another_config():
    config = FeatureConfig(
        impossible_km=100.0,
        impossible_within_ms=2 * HOUR_MS,
        min_travel_ms=0,
        small_amount_minor=10_000,
    )
    wallet = WalletState(
        geo_points=[GeoPoint(T - HOUR_MS, 48.85, 2.35, "FR")],
        purchases=[fact(T - 1, amount=10_000)],
    )
    f = both(order(), wallet, config)
    assert f["impossible_travel"] == 1.0 and f["small_probes_1h"] == 1.0
    same_time = WalletState(geo_points=[GeoPoint(T, 48.85, 2.35, "FR")])
    with pytest.raises(ZeroDivisionError):
        reference_row(order(), same_time, entity_store(), config)
    with pytest.raises(ZeroDivisionError):
        wallet_row(wallet_features(config), order(), same_time, entity_store())


@pytest.mark.parametrize(
    ("o", "wallet", "error"),
    [
        (order(amount=-1), WalletState(), ValueError),  # log1p(-1): math domain error
        (order(lat=math.inf), WalletState(geo_points=[GeoPoint(T - 1, 1.0, 1.0, "A")]), ValueError),
        (order(lat=None), WalletState(geo_points=[GeoPoint(T - 1, 1.0, 1.0, "A")]), TypeError),
    ],
)
def test_what_python_refused_is_refused(o, wallet, error):
    with pytest.raises(error):
        reference_row(o, wallet, entity_store())
    with pytest.raises(error):
        wallet_row(wallet_features(), o, wallet, entity_store())


def test_unsorted_rows_are_bisected_as_python_bisects_them():
    rows = [fact(T - 5), fact(T - 2 * DAY_MS), fact(T + 5), fact(T - 3 * HOUR_MS), fact(T - 1)]
    wallet = WalletState(
        purchases=rows,
        failed_logins=[T, T - 2 * HOUR_MS, T - 1],
        resales=[ResaleFact(T + 1, 1, 1), ResaleFact(T - 1, 2, 2)],
    )
    both(order(), wallet)


def test_a_layout_the_reader_does_not_know_is_refused():
    fields = dict(second_ms=1, minute_ms=1, hour_ms=1, day_ms=1, purchase_retention_ms=1,
                  duplicate_window_ms=1, device_memory_ms=1, token_window_ms=1,
                  earth_radius_km=1.0, small_amount_minor=1, impossible_km=1.0,
                  impossible_within_ms=1, min_travel_ms=1, order_fields=Order._fields,
                  purchase_fact_fields=PurchaseFact._fields, geo_point_fields=GeoPoint._fields,
                  resale_fact_fields=("ts_ms", "flip_ms", "hold_ms"),
                  wallet_state=WalletState)  # fmt: skip
    with pytest.raises(ValueError, match="ResaleFact"):
        type(wallet_features())(**fields)


@pytest.mark.slow
def test_every_purchase_of_a_dense_simulation_matches_the_reference():
    config = SimConfig(
        seed=7,
        days=3,
        n_users=600,
        n_shows=15,
        purchase_rate=0.6,
        fraud_rate=0.2,
        resale_share=0.4,
        list_share=0.4,
        travel_prob=0.3,
    )
    engine, reader, compared = FeatureEngine(), wallet_features(), 0
    for kind, record in simulate(config):
        if kind == "purchase":
            o = read_order(record)
            wallet = engine.wallets.get(o.wallet) or WalletState(address=o.wallet)
            native = wallet_row(reader, o, wallet, engine.entities)
            assert bits(native) == bits(reference_row(o, wallet, engine.entities)), o.purchase_id
            compared += 1
        try:
            engine.process(kind, record)
        except LateEventError:
            pass
    assert compared > 1_000


def test_random_trips_amounts_and_times_match_python_to_the_bit():
    """Enough random trips that ``x * x`` instead of the C library's ``pow(x, 2)`` (which
    CPython's ``**`` calls; they differ in about 1 square in 1 000) would show."""
    rng = random.Random(20)
    reader, entities = wallet_features(), entity_store()
    for _ in range(4_000):
        gap = rng.randrange(0, 2 * HOUR_MS)
        wallet = WalletState(
            geo_points=[GeoPoint(T - gap, rng.uniform(-90, 90), rng.uniform(-180, 180), "A")],
            purchases=[fact(T - rng.randrange(0, 8 * DAY_MS), amount=rng.randrange(1, 10**7))],
            purchases_total=rng.randrange(1, 10**4),
            amount_total_minor=rng.randrange(1, 10**12),
            first_seen_ms=T - rng.randrange(0, 10**11),
            login_ok_ms=T - rng.randrange(0, 10**8),
        )
        o = order(
            lat=rng.uniform(-90, 90),
            lon=rng.uniform(-180, 180),
            amount=rng.randrange(0, 10**9),
            account_created_ms=T - rng.randrange(0, 10**11),
        )
        assert bits(wallet_row(reader, o, wallet, entities)) == bits(
            reference_row(o, wallet, entities)
        )


def test_the_row_ends_with_the_crowd_and_mark_values():
    """After ``email_verified``: the crowd store's values of the read, the order's wallet,
    time and card (``crowd_values`` of the purchase), then the marks as given (the same
    objects); the marks must be six."""
    engine, reader, compared = FeatureEngine(), wallet_features(), 0
    marks = (1.0, 0.0, 2.0, 0.0, 3.0, 0.5)
    for kind, record in simulate(SimConfig(seed=3, days=1)):
        if kind == "purchase":
            o = read_order(record)
            wallet = engine.wallets.get(o.wallet) or WalletState(address=o.wallet)
            read = crowd_read(record, o.unit)
            row = reader.row(o, wallet, engine.entities, engine.crowds, read, marks)
            assert len(row) == len(FEATURE_NAMES)
            assert row[: len(NAMES)] == wallet_row(reader, o, wallet, engine.entities)
            crowd = row[len(NAMES) : len(NAMES) + len(CROWD_FEATURES)]
            assert bits(crowd) == bits(crowd_values(record, engine.crowds, o.ts, read))
            assert all(a is b for a, b in zip(row[-len(marks) :], marks, strict=True))
            compared += 1
        try:
            engine.process(kind, record)
        except LateEventError:
            pass
    assert compared > 500
    with pytest.raises(ValueError, match="6 values expected, 5 given"):
        reader.row(o, wallet, engine.entities, engine.crowds, read, marks[:5])
