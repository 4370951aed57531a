"""Features on hand-built event sequences: events in, feature values out."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest

from processors import statecodec
from processors.entity_state import ENTITY_ROWS_CAP, entity_store
from processors.features import (
    FEATURE_NAMES,
    MISSING,
    FeatureConfig,
    FeatureEngine,
    LateEventError,
    apply_purchase,
    feature_vector,
    purchase_features,
)
from processors.records import Order, read_order
from processors.state import PURCHASES_CAP, WalletState

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
A, B, C = "0x" + "a" * 40, "0x" + "b" * 40, "0x" + "c" * 40
ZERO = "0x" + "0" * 40
BERLIN = {"lat": 52.52, "lon": 13.405, "country": "DE"}
POTSDAM = {"lat": 52.39, "lon": 13.064, "country": "DE"}
NEW_YORK = {"lat": 40.7128, "lon": -74.006, "country": "US"}
PARIS = {"lat": 48.8566, "lon": 2.3522, "country": "FR"}  # 878 km from Berlin
CONTRACT = "0x" + "e" * 40


def at(**delta: float) -> datetime:
    return T0 + timedelta(**delta)


def purchase(when: datetime, **over: object) -> tuple[str, dict]:
    record = {
        "purchase_id": f"p-{when.isoformat()}-{over.get('wallet', A)}",
        "occurred_at": when, "wallet": A, "user_id": "u1", "organizer_id": "org1",
        "show_id": "show1", "ticket_id": f"tk-{when.timestamp()}", "quantity": 1,
        "unit_price_minor": 5_000, "currency": "USD", "channel": "PRIMARY",
        "seller_wallet": None, "payment_method": "CARD", "card_fingerprint": "card1",
        "card_country": "DE", "email_domain": "example.com", "ip": "203.0.113.7",
        "geo": BERLIN, "device_id": "dev1", "user_agent": "Mozilla/5.0",
        "account_created_at": T0 - timedelta(days=10), "sale_opens_at": None,
        "mfa_enabled": True, "phone_verified": True, "email_verified": False,
    }  # fmt: skip
    record.update(over)
    return "purchase", record


def auth(when: datetime, kind: str, **over: object) -> tuple[str, dict]:
    record = {"event_id": f"a-{when.isoformat()}-{kind}", "occurred_at": when, "kind": kind,
              "user_id": "u1", "wallet": A, "ip": "203.0.113.7", "geo": None,
              "device_id": None, "user_agent": None}  # fmt: skip
    record.update(over)
    return "auth", record


def transfer(when: datetime, kind: str, frm: str, to: str, token: str = "1") -> tuple[str, dict]:
    record = {"chain_id": 1, "block_number": 1, "block_hash": "0x1", "block_time": when,
              "tx_hash": f"0x{when.timestamp()}", "log_index": 0, "contract": CONTRACT,
              "standard": "ERC721", "token_id": token, "amount": "1", "from_address": frm,
              "to_address": to, "kind": kind, "price_wei": None}  # fmt: skip
    return "transfer", record


def run(events: list[tuple[str, dict]], engine: FeatureEngine | None = None) -> list[dict]:
    engine = engine or FeatureEngine()
    return [f for kind, rec in events if (f := engine.process(kind, rec)) is not None]


def last(events: list[tuple[str, dict]], *names: str) -> dict[str, float]:
    features = run(events)[-1]
    return {n: features[n] for n in names}


def test_feature_names_are_unique_and_every_value_is_a_float():
    features = run([purchase(at())])[0]
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert list(features) == list(FEATURE_NAMES)
    assert all(type(v) is float for v in features.values())
    assert feature_vector(features) == [features[n] for n in FEATURE_NAMES]


def test_first_purchase_with_nothing_known_gives_the_missing_sentinels():
    events = [purchase(at(), geo=None, device_id=None, card_fingerprint=None,
                       account_created_at=None)]  # fmt: skip
    f = run(events)[0]
    assert MISSING == -1.0
    for name in ("secs_since_last_purchase", "amount_vs_avg", "new_country", "account_age_days",
                 "geo_distance_km", "geo_speed_kmh", "impossible_travel", "secs_since_login_ok",
                 "secs_since_password_change", "secs_since_email_change", "new_device",
                 "avg_hold_time_h", "mint_to_resale_min", "wallet_min_flip_min",
                 "price_deviation", "resale_markup", "secs_since_sale_open", "before_sale_open",
                 "wallets_per_device_24h", "wallets_per_card_24h"):  # fmt: skip
        assert f[name] == MISSING, name
    assert f["velocity_1h"] == f["velocity_24h"] == f["purchases_total"] == 0.0
    assert f["wallet_age_days"] == 0.0
    assert (f["wallets_per_ip_24h"], f["linked_wallets"]) == (1.0, 1.0)


@pytest.mark.parametrize(
    ("gap", "expected_1h"),
    [
        (timedelta(hours=1) - timedelta(milliseconds=1), 1.0),  # just inside
        (timedelta(hours=1), 0.0),  # exactly 1 h: the window is (t - 1 h, t]
        (timedelta(hours=1, milliseconds=1), 0.0),  # just outside
    ],
)
def test_velocity_1h_window_boundary(gap, expected_1h):
    f = last([purchase(at()), purchase(at() + gap)], "velocity_1h", "velocity_24h")
    assert f == {"velocity_1h": expected_1h, "velocity_24h": 1.0}


@pytest.mark.parametrize(
    ("gap", "expected_24h"),
    [(timedelta(hours=24) - timedelta(milliseconds=1), 1.0), (timedelta(hours=24), 0.0)],
)
def test_velocity_24h_window_boundary(gap, expected_24h):
    assert last([purchase(at()), purchase(at() + gap)], "velocity_24h")["velocity_24h"] == (
        expected_24h
    )


def test_velocity_amounts_and_tickets():
    events = [
        purchase(at(hours=-30), quantity=2, show_id="show1"),  # 7 d only
        purchase(at(hours=-5), quantity=3, unit_price_minor=1_000, show_id="show2"),  # 24 h
        purchase(at(minutes=-20), quantity=1, unit_price_minor=7_000),  # 1 h
        purchase(at(), quantity=2, unit_price_minor=4_000),
    ]
    assert last(events, "velocity_1h", "velocity_24h", "amount_1h_minor", "amount_24h_minor",
                "tickets_24h", "show_tickets_7d", "secs_since_last_purchase",
                "purchases_total", "amount_vs_avg", "quantity", "amount_minor",
                "log_amount") == {  # fmt: skip
        "velocity_1h": 1.0, "velocity_24h": 2.0, "amount_1h_minor": 7_000.0,
        "amount_24h_minor": 10_000.0, "tickets_24h": 4.0, "show_tickets_7d": 3.0,
        "secs_since_last_purchase": 1_200.0, "purchases_total": 3.0,
        "amount_vs_avg": 8_000 / ((10_000 + 3_000 + 7_000) / 3), "quantity": 2.0,
        "amount_minor": 8_000.0, "log_amount": math.log1p(8_000),
    }  # fmt: skip


def test_card_testing_probes_and_duplicates():
    events = [
        purchase(at(minutes=-50), unit_price_minor=100),
        purchase(at(minutes=-40), unit_price_minor=500),  # == small_amount_minor: a probe
        purchase(at(minutes=-30), unit_price_minor=501),
        purchase(at(minutes=-11), unit_price_minor=9_000),  # outside 10 min
        purchase(at(minutes=-9), unit_price_minor=9_000),
        purchase(at(minutes=-8), unit_price_minor=9_000, show_id="other"),
        purchase(at(minutes=-7), unit_price_minor=4_500, quantity=2),  # same amount, other qty
        purchase(at(), unit_price_minor=9_000),
    ]
    assert last(events, "small_probes_1h", "duplicates_10m") == {
        "small_probes_1h": 2.0,
        "duplicates_10m": 1.0,
    }


def test_diversity_counts_include_this_purchase_and_skip_older_than_24h():
    events = [
        purchase(at(hours=-48), geo=PARIS, card_fingerprint="old", show_id="s0"),
        purchase(
            at(hours=-3),
            show_id="s1",
            payment_method="PAYPAL",
            card_fingerprint=None,
            ip="198.51.100.1",
            device_id="dev2",
        ),  # fmt: skip
        purchase(at(hours=-2), show_id="s2", card_fingerprint="card2", geo=NEW_YORK),
        purchase(at(), show_id="s3", card_fingerprint="card3", geo=BERLIN),
    ]
    assert last(events, "distinct_shows_24h", "payment_methods_24h", "cards_24h", "ips_24h",
                "devices_24h", "countries_24h", "new_country") == {  # fmt: skip
        "distinct_shows_24h": 3.0, "payment_methods_24h": 2.0, "cards_24h": 2.0,
        "ips_24h": 2.0, "devices_24h": 2.0, "countries_24h": 2.0, "new_country": 0.0,
    }  # fmt: skip
    new = events[:3] + [purchase(at(), geo={"lat": 35.68, "lon": 139.69, "country": "JP"})]
    assert last(new, "new_country") == {"new_country": 1.0}


def test_wallet_age_counts_first_seen_on_chain_and_account_age_from_the_record():
    events = [
        transfer(at(days=-3), "MINT", ZERO, A),
        purchase(at(), account_created_at=at(days=-1.5)),
    ]
    assert last(events, "wallet_age_days", "account_age_days") == {
        "wallet_age_days": 3.0,
        "account_age_days": 1.5,
    }


@pytest.mark.parametrize(
    ("first", "second", "gap", "impossible"),
    [
        (BERLIN, NEW_YORK, timedelta(minutes=30), 1.0),
        (BERLIN, PARIS, timedelta(minutes=59), 1.0),  # 878 km in 59 min
        (BERLIN, PARIS, timedelta(hours=1), 0.0),  # not < 1 h
        (BERLIN, PARIS, timedelta(hours=3), 0.0),
        (BERLIN, POTSDAM, timedelta(minutes=5), 0.0),  # 25 km: plausible
    ],
)
def test_impossible_travel(first, second, gap, impossible):
    f = last([purchase(at(), geo=first), purchase(at() + gap, geo=second)],
             "impossible_travel", "geo_distance_km", "geo_speed_kmh")  # fmt: skip
    assert f["impossible_travel"] == impossible
    assert f["geo_speed_kmh"] == pytest.approx(f["geo_distance_km"] / (gap / timedelta(hours=1)))


def test_geo_distance_uses_haversine_and_a_login_location_counts():
    events = [auth(at(minutes=-10), "LOGIN_OK", geo=BERLIN), purchase(at(), geo=PARIS)]
    f = last(events, "geo_distance_km", "geo_speed_kmh", "impossible_travel")
    assert f["geo_distance_km"] == pytest.approx(878, abs=2)
    assert f["geo_speed_kmh"] == pytest.approx(f["geo_distance_km"] * 6)
    assert f["impossible_travel"] == 1.0


def test_shared_entities_and_linked_wallet_cluster():
    events = [
        purchase(at(hours=-25), wallet=C, ip="203.0.113.7"),  # outside 24 h
        purchase(at(hours=-2), wallet=B, ip="203.0.113.7", device_id="other", card_fingerprint="x"),
        purchase(at(hours=-1), wallet=C, ip="198.51.100.9", device_id="dev1", card_fingerprint="x"),
        purchase(
            at(hours=-1),
            wallet="0x" + "d" * 40,
            ip="1.1.1.1",
            device_id="z",
            card_fingerprint="card1",
        ),  # fmt: skip
        purchase(at(), wallet=A),
    ]
    assert last(events, "wallets_per_ip_24h", "wallets_per_device_24h", "wallets_per_card_24h",
                "linked_wallets") == {  # fmt: skip
        "wallets_per_ip_24h": 2.0, "wallets_per_device_24h": 2.0,
        "wallets_per_card_24h": 2.0, "linked_wallets": 4.0,
    }  # fmt: skip


def test_account_takeover_signals_from_auth_events():
    events = [
        auth(at(minutes=-70), "LOGIN_FAILED"),  # outside 1 h at purchase time
        auth(at(minutes=-40), "LOGIN_FAILED"),
        auth(at(minutes=-35), "LOGIN_FAILED"),
        auth(at(minutes=-32), "MFA_FAILED"),
        auth(at(minutes=-30), "LOGIN_OK"),
        auth(at(minutes=-20), "PASSWORD_CHANGED"),
        auth(at(minutes=-10), "EMAIL_CHANGED"),
        purchase(at(), device_id="brand-new"),
    ]
    assert last(events, "failed_logins_1h", "mfa_failures_1h", "fails_before_login_ok",
                "secs_since_login_ok", "secs_since_password_change",
                "secs_since_email_change", "new_device") == {  # fmt: skip
        "failed_logins_1h": 2.0, "mfa_failures_1h": 1.0, "fails_before_login_ok": 3.0,
        "secs_since_login_ok": 1_800.0, "secs_since_password_change": 1_200.0,
        "secs_since_email_change": 600.0, "new_device": 1.0,
    }  # fmt: skip


def test_failed_logins_then_success_expires_after_an_hour():
    events = [auth(at(minutes=-90), "LOGIN_FAILED"), auth(at(minutes=-61), "LOGIN_OK"),
              purchase(at())]  # fmt: skip
    assert last(events, "fails_before_login_ok")["fails_before_login_ok"] == 0.0


def test_known_device_is_not_new():
    events = [purchase(at(days=-2), device_id="dev1"), purchase(at(), device_id="dev1")]
    assert last(events, "new_device") == {"new_device": 0.0}


def test_hold_time_flip_and_resales_from_chain_transfers():
    events = [
        transfer(at(hours=-10), "MINT", ZERO, A, token="1"),
        transfer(at(hours=-9), "SALE", A, B, token="1"),  # flip 60 min, held 1 h
        transfer(at(hours=-8), "TRANSFER", C, A, token="2"),
        transfer(at(hours=-5), "TRANSFER", A, B, token="2"),  # held 3 h, not a mint
        transfer(at(hours=-4), "MINT", ZERO, A, token="3"),
        purchase(at()),
    ]
    assert last(events, "avg_hold_time_h", "wallet_min_flip_min", "resales_30d",
                "holdings_count", "wash_cycles_30d") == {  # fmt: skip
        "avg_hold_time_h": 2.0, "wallet_min_flip_min": 60.0, "resales_30d": 2.0,
        "holdings_count": 1.0, "wash_cycles_30d": 0.0,
    }  # fmt: skip


def test_wash_trading_cycle_a_b_c_a():
    events = [
        transfer(at(hours=-3), "MINT", ZERO, A, token="7"),
        transfer(at(hours=-2), "SALE", A, B, token="7"),
        transfer(at(hours=-1), "SALE", B, C, token="7"),
        transfer(at(minutes=-30), "SALE", C, A, token="7"),
        purchase(at()),
    ]
    assert last(events, "wash_cycles_30d") == {"wash_cycles_30d": 1.0}


def test_buying_back_a_ticket_the_wallet_sold_is_flagged():
    ticket = f"{CONTRACT}:9"
    events = [
        transfer(at(hours=-2), "SALE", A, B, token="9"),
        purchase(at(), ticket_id=ticket, channel="RESALE", seller_wallet=B),
    ]
    assert last(events, "ticket_previously_held") == {"ticket_previously_held": 1.0}
    assert last(events[1:], "ticket_previously_held") == {"ticket_previously_held": 0.0}
    # the purchase and its SALE transfer back to A count as one cycle
    both = [*events, transfer(at(seconds=30), "SALE", B, A, token="9"), purchase(at(minutes=1))]
    assert last(both, "wash_cycles_30d") == {"wash_cycles_30d": 1.0}


def test_show_price_level_markup_mint_to_resale_and_popularity():
    events = [
        purchase(at(minutes=-90), wallet=B, unit_price_minor=4_000, ticket_id="t1"),
        purchase(at(minutes=-50), wallet=B, unit_price_minor=5_000, ticket_id="t2"),
        purchase(at(minutes=-40), wallet=C, unit_price_minor=9_000, ticket_id="t3"),
        purchase(at(), channel="RESALE", seller_wallet=B, ticket_id="t2", unit_price_minor=15_000),
    ]
    assert last(events, "price_deviation", "resale_markup", "mint_to_resale_min",
                "show_popularity_1h", "is_resale") == {  # fmt: skip
        "price_deviation": MISSING,  # no resale price yet
        "resale_markup": 3.0,  # vs this ticket's primary price
        "mint_to_resale_min": 50.0, "show_popularity_1h": 2.0, "is_resale": 1.0,
    }  # fmt: skip
    unknown_ticket = events[:3] + [purchase(at(), channel="RESALE", ticket_id="t9",
                                            unit_price_minor=10_000)]  # fmt: skip
    f = last(unknown_ticket, "resale_markup", "mint_to_resale_min")
    assert f == {"resale_markup": 2.0, "mint_to_resale_min": MISSING}  # vs median 5 000
    primary = events[:3] + [purchase(at(), unit_price_minor=10_000)]
    assert last(primary, "price_deviation", "resale_markup") == {
        "price_deviation": 2.0,
        "resale_markup": MISSING,
    }


def _other_show_daily(days: int) -> list[tuple[str, dict]]:
    """A purchase of another show each day up to the day before ``at()``: the store's floor
    moves on, so its hourly sweeps run over the days in between."""
    return [purchase(at(days=-d), wallet=C, show_id="show2", ticket_id=f"o{d}")
            for d in range(days, 0, -1)]  # fmt: skip


def test_a_resale_finds_its_first_sale_whether_or_not_the_idle_show_was_swept_meanwhile():
    """A show idle past its 7-day windows is swept; its tickets' first primary sales stay for
    30 d, so a resale ten days on gets the same answer as in a store whose sweep has not run
    yet (a live replica sweeps as its batches' floor allows, replay as event time goes)."""
    sale = purchase(at(days=-10), wallet=B, unit_price_minor=5_000, ticket_id="t1")
    resale = purchase(at(), channel="RESALE", seller_wallet=B, ticket_id="t1",
                      unit_price_minor=6_000)  # fmt: skip
    names = ("mint_to_resale_min", "resale_markup", "show_popularity_1h", "price_deviation")
    unswept = last([sale, resale], *names)
    swept = last([sale, *_other_show_daily(9), resale], *names)
    assert swept == unswept == {"mint_to_resale_min": 14_400.0, "resale_markup": 1.2,
                                "show_popularity_1h": 0.0, "price_deviation": MISSING}


def test_a_first_sale_answers_for_30_days_only():
    """Past 30 d (the wallets' resale window) a first sale is not answered, active show or not;
    the markup falls back to the show's primary median."""
    first = purchase(at(days=-31), wallet=B, unit_price_minor=5_000, ticket_id="t1")
    daily = [purchase(at(days=-d), wallet=C, unit_price_minor=4_000, ticket_id=f"d{d}")
             for d in range(6, 0, -1)]  # fmt: skip
    resale = purchase(at(), channel="RESALE", seller_wallet=B, ticket_id="t1",
                      unit_price_minor=6_000)  # fmt: skip
    assert last([first, *daily, resale], "mint_to_resale_min", "resale_markup") == {
        "mint_to_resale_min": MISSING, "resale_markup": 1.5}  # fmt: skip
    within = purchase(at(days=-29), wallet=B, unit_price_minor=5_000, ticket_id="t1")
    assert last([within, *daily, resale], "mint_to_resale_min") == {
        "mint_to_resale_min": 29 * 1_440.0}


def test_a_swept_show_keeps_only_its_recent_first_sales_and_goes_without_them():
    engine = FeatureEngine()
    for kind, record in [purchase(at(days=-40), wallet=B, ticket_id="old"),
                         purchase(at(days=-20), wallet=B, ticket_id="recent"),
                         *_other_show_daily(19)]:  # fmt: skip
        engine.process_row(kind, record)
    show = engine.entities.show("show1")  # idle 19 d: its rows go, the sale of 20 d ago stays
    assert show is not None and list(show["tickets"]) == ["recent"]
    assert not (show["primary_prices"] or show["resale_prices"] or show["sales"])
    for kind, record in [purchase(at(days=d), wallet=C, show_id="show2", ticket_id=f"n{d}")
                         for d in range(1, 12)]:  # fmt: skip
        engine.process_row(kind, record)
    assert engine.entities.show("show1") is None  # its last first sale is past 30 d: gone


def test_a_show_answers_a_query_behind_after_many_later_sales_were_applied_first():
    """A worker's entity replica applies other partitions' sales before a partition it scores
    behind them: 1 500 later sales (a busy show's day) must not crowd out the prices before the
    query that replay, applying in order, has."""
    t0, hour = 1_700_000_000_000, 3_600_000
    base = read_order(purchase(at())[1])

    def sale(ts: int, price: int) -> Order:
        return base._replace(ts=ts, purchase_id=f"p{ts}", ticket_id=f"t{ts}", unit=price,
                             sale_opens_ms=None)

    early = [sale(t0 + i * 60_000, 4_000 + i) for i in range(60)]  # the hour before the query
    later = [sale(t0 + 2 * hour + i * 1_000, 9_000) for i in range(1_500)]
    in_order, ahead = entity_store(), entity_store()
    for o in early:
        in_order.apply_order(o)
    ahead.advance_floor(t0)  # the scorer's floor: its batch is behind the replica
    for o in later + early:  # the later sales first, as the replica may apply them
        ahead.apply_order(o)
    query = sale(t0 + hour + 1, 4_034)
    # the median of the latest 51 prices before the query (4 009 to 4 059) is 4 034
    assert ahead.show_values(query) == in_order.show_values(query)
    assert in_order.show_values(query)[0] == 1.0


def test_sale_open_from_the_record_or_remembered_by_the_show():
    opens = at(minutes=-1)
    events = [purchase(at(minutes=-2), wallet=B, sale_opens_at=opens), purchase(at(seconds=2))]
    assert last(events, "secs_since_sale_open", "before_sale_open") == {
        "secs_since_sale_open": 62.0,
        "before_sale_open": 0.0,
    }
    early = [purchase(at(minutes=-2), sale_opens_at=opens)]
    assert last(early, "secs_since_sale_open", "before_sale_open") == {
        "secs_since_sale_open": 0.0,
        "before_sale_open": 1.0,
    }


def test_verification_flags():
    events = [purchase(at(), mfa_enabled=False, phone_verified=True, email_verified=False)]
    assert last(events, "mfa_enabled", "phone_verified", "email_verified") == {
        "mfa_enabled": 0.0,
        "phone_verified": 1.0,
        "email_verified": 0.0,
    }


def test_out_of_order_event_within_lateness_is_applied_in_event_time():
    p1, p2, p3 = purchase(at()), purchase(at(minutes=-4)), purchase(at(minutes=30))
    out_of_order = run([p1, p2, p3])
    in_order = run([p2, p1, p3])
    names = ("velocity_1h", "secs_since_last_purchase", "amount_1h_minor")
    # the late one sees only what happened before it, as it would in order
    assert {n: out_of_order[1][n] for n in names} == {n: in_order[0][n] for n in names}
    assert out_of_order[1]["velocity_1h"] == 0.0
    assert out_of_order[2] == in_order[2]
    assert out_of_order[2]["velocity_1h"] == 2.0


@pytest.mark.parametrize(
    ("behind", "late"),
    [(timedelta(minutes=5), False), (timedelta(minutes=5, milliseconds=1), True)],
)
def test_event_beyond_allowed_lateness_raises_and_changes_nothing(behind, late):
    engine = FeatureEngine(FeatureConfig(allowed_lateness_ms=5 * 60_000))
    run([purchase(at(hours=1))], engine)
    before = engine.wallets[A].to_dict()
    stale = purchase(at(hours=1) - behind)
    if late:
        with pytest.raises(LateEventError, match="allowed lateness 300000 ms") as err:
            engine.process(*stale)
        assert err.value.watermark_ms - err.value.ts_ms == 300_001
        assert engine.wallets[A].to_dict() == before
    else:
        assert engine.process(*stale)["velocity_1h"] == 0.0


def test_late_chain_transfer_uses_the_chain_lateness():
    engine = FeatureEngine()
    engine.process(*transfer(at(hours=1), "MINT", ZERO, A))
    engine.process(*transfer(at(hours=1, minutes=-20), "MINT", ZERO, A))
    with pytest.raises(LateEventError):
        engine.process(*transfer(at(hours=1, minutes=-31), "MINT", ZERO, A))


def test_each_stream_is_late_only_against_its_own_watermark():
    """Topics are consumed independently: an auth stream running hours ahead of the purchase
    stream does not make the wallet's purchases late, and vice versa."""
    engine = FeatureEngine()
    engine.process(*auth(at(hours=5), "LOGIN_FAILED"))
    assert engine.process(*purchase(at(hours=1))) is not None
    engine.process(*auth(at(hours=5, minutes=-4), "LOGIN_FAILED"))
    with pytest.raises(LateEventError, match="late auth"):
        engine.process(*auth(at(hours=5, minutes=-6), "LOGIN_FAILED"))
    with pytest.raises(LateEventError, match="late purchase"):
        engine.process(*purchase(at(minutes=54)))


def test_a_redelivered_record_is_applied_once():
    once, twice = FeatureEngine(), FeatureEngine()
    records = [purchase(at(minutes=1)), auth(at(minutes=2), "LOGIN_FAILED"),
               transfer(at(minutes=3), "MINT", ZERO, A)]
    run(records, once)
    run(records + records, twice)
    assert twice.wallets[A].to_dict() == once.wallets[A].to_dict()
    shows = once.entities.keys("show")
    assert shows == twice.entities.keys("show") and shows
    assert [twice.entities.show(k) for k in shows] == [once.entities.show(k) for k in shows]
    assert twice.entities.sizes() == once.entities.sizes()


def test_lateness_above_the_state_slack_is_refused():
    with pytest.raises(ValueError, match="allowed_lateness_ms"):
        FeatureConfig(allowed_lateness_ms=2 * 3_600_000)


def test_naive_timestamps_are_refused():
    with pytest.raises(ValueError, match="naive"):
        run([purchase(datetime(2026, 1, 1))])  # noqa: DTZ001


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown record kind"):
        FeatureEngine().process("refund", {})


def _story(days: int = 2) -> list[tuple[str, dict]]:
    events: list[tuple[str, dict]] = []
    for i in range(days * 24 * 6):
        when = at(minutes=10 * i)
        wallet = (A, B, C)[i % 3]
        events.append(purchase(when, wallet=wallet, ip=f"198.51.100.{i % 7}",
                               device_id=f"d{i % 5}", card_fingerprint=f"c{i % 4}",
                               show_id=f"s{i % 3}", geo=(BERLIN, PARIS)[i % 2],
                               ticket_id=f"{CONTRACT}:{i}"))  # fmt: skip
        if i % 5 == 0:
            events.append(auth(when, "LOGIN_FAILED", wallet=wallet))
        if i % 4 == 0:
            events.append(transfer(when, "SALE", wallet, (A, B, C)[(i + 1) % 3], token=str(i - 4)))
    return events


def test_engine_is_deterministic():
    first, second = FeatureEngine(), FeatureEngine()
    assert run(_story(), first) == run(_story(), second)
    assert {k: w.to_dict() for k, w in first.wallets.items()} == {
        k: w.to_dict() for k, w in second.wallets.items()
    }


def test_wallet_state_round_trips_through_its_encoding_and_gives_the_same_features():
    """The wallet table's values are encoded; the entity store is not (every worker rebuilds
    it from the purchases topic)."""
    engine = FeatureEngine()
    run(_story(1), engine)
    nxt = purchase(at(days=1, minutes=5), wallet=B, ip="198.51.100.1", device_id="d1",
                   card_fingerprint="c1", show_id="s1")[1]  # fmt: skip
    wallet = engine.wallets[B]
    restored = statecodec.decode(statecodec.encode(wallet))
    assert restored.to_dict() == wallet.to_dict()
    assert (purchase_features(nxt, restored, engine.entities)
            == purchase_features(nxt, wallet, engine.entities))


def test_purchase_features_do_not_change_state_and_apply_does():
    wallet, entities = WalletState(address=A), entity_store()
    _, record = purchase(at())
    before = wallet.to_dict()
    purchase_features(record, wallet, entities)
    assert wallet.to_dict() == before and len(entities) == 0
    apply_purchase(record, wallet, entities)
    assert wallet.purchases_total == 1
    assert entities.entity_rows("ip", record["ip"]) == [(wallet.watermark_ms, A)]


def test_memory_stays_bounded_over_30_simulated_days():
    engine = FeatureEngine()
    sizes = []
    for day in range(30):
        for minute in range(0, 24 * 60, 2):  # a bot: a purchase every 2 min, new IPs daily
            when = at(days=day, minutes=minute)
            engine.process(*purchase(when, ip=f"10.{day}.{minute % 250}.1",
                                     device_id=f"d{day}-{minute % 40}",
                                     card_fingerprint=f"c{minute % 90}",
                                     ticket_id=f"{CONTRACT}:{day}-{minute}"))  # fmt: skip
            if minute % 10 == 0:
                engine.process(*auth(when, "LOGIN_FAILED"))
                engine.process(*transfer(when, "SALE", A, B, token=f"{day}-{minute - 10}"))
        sizes.append(len(json.dumps(engine.wallets[A].to_dict())))
    wallet = engine.wallets[A]
    assert len(wallet.purchases) <= PURCHASES_CAP
    assert len(wallet.failed_logins) <= 64 and len(wallet.devices) <= 16
    cards = engine.entities.keys("card")
    assert all(len(engine.entities.entity_rows("card", c) or ()) <= ENTITY_ROWS_CAP for c in cards)
    assert max(sizes[10:]) <= max(sizes[:10]) * 1.1  # flat after the first days
    assert len(engine.entities.keys("ip")) <= 2 * 250 + 1  # yesterday's and today's IPs only
    assert len(engine.entities.keys("device")) <= 2 * 40 + 1
