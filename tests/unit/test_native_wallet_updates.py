"""The native wallet updates (``WALLET_UPDATES``: ``apply_order``, ``apply_auth``,
``apply_transfer``, ``first_time``, ``observe``, ``prune``) leave the state the Python they
replaced left (``tests/support/apply_reference.py``):
the same rows of the same NamedTuple classes in the same order, the same dicts in the same
insertion order, the same ints, the same return value. Each test applies the same events to
two copies of a hand-built state, one natively and one through the reference, and compares
``repr`` of every field (it shows the classes, the order of lists and dicts, and the values)."""

from __future__ import annotations

import copy
import random
import sys
from collections.abc import Callable, Mapping
from types import MappingProxyType

import pytest
from msgspec.msgpack import encode

from processors import statecodec
from processors._native import WalletUpdates
from processors.apply import (
    DEFAULT_CONFIG,
    FeatureConfig,
    LateEventError,
    apply_auth_at,
    apply_order,
    apply_read_transfer,
    check_lateness,
)
from processors.records import Order, Transfer
from processors.state import (
    APPLIED_CAP,
    AUTH_CAP,
    AUTH_RETENTION_MS,
    DEVICE_RETENTION_MS,
    DEVICES_CAP,
    FAILED_LOGIN_KINDS,
    GEO_CAP,
    GEO_RETENTION_MS,
    HOLDINGS_CAP,
    LOGIN_OK_KINDS,
    MFA_FAILED_KINDS,
    PRUNE_EVERY_MS,
    PURCHASE_RETENTION_MS,
    PURCHASES_CAP,
    RESALES_CAP,
    SLACK_MS,
    TOKEN_RETENTION_MS,
    TOKENS_CAP,
    WALLET_UPDATES,
    WASH_CAP,
    GeoPoint,
    Holding,
    PurchaseFact,
    ResaleFact,
    WalletState,
)
from processors.timeutil import DAY_MS, HOUR_MS, MINUTE_MS
from tests.support import apply_reference as ref

pytestmark = pytest.mark.unit

T = 1_780_000_000_000  # an event time (ms)


def order(**fields) -> Order:
    base = dict(ts=T, ingested_ms=None, purchase_id="p-1", wallet="0xw", show_id="show-1",
                ticket_id="0xc:1", channel="PRIMARY", quantity=2, amount=10_000, unit=5_000,
                payment_method="card", card="card-1", ip="10.0.0.1", device="dev-1",
                geo=True, lat=52.52, lon=13.405, country="DE", sale_opens_ms=None,
                account_created_ms=None, mfa_enabled=True, phone_verified=None,
                email_verified=None)  # fmt: skip
    base.update(fields)
    return Order(**base)  # type: ignore[arg-type]


def fact(ts: int, **fields) -> PurchaseFact:
    base = dict(ts_ms=ts, show_id="show-1", amount_minor=10_000, quantity=2,
                payment_method="card", card="card-1", lat=None, lon=None, country=None,
                ip="10.0.0.1", device="dev-1", channel="PRIMARY")  # fmt: skip
    base.update(fields)
    return PurchaseFact(**base)  # type: ignore[arg-type]


def fields(wallet: WalletState) -> list[tuple[str, str]]:
    """Every field as ``repr`` shows it: classes, order and values."""
    return [(name, repr(getattr(wallet, name))) for name in wallet.__struct_fields__]


def same(
    wallet: WalletState,
    native: Callable[[WalletState], object],
    reference: Callable[[WalletState], object],
    raises: type[Exception] | None = None,
) -> WalletState:
    """Run ``native`` on ``wallet`` and ``reference`` on a deep copy of it; assert the same
    result (or both raising ``raises``) and the same state, field by field. Returns the
    native state."""
    twin = copy.deepcopy(wallet)
    outcomes = []
    for run, state in ((native, wallet), (reference, twin)):
        try:
            outcomes.append(("returned", run(state)))
        except Exception as error:  # both must raise the same
            outcomes.append(("raised", type(error)))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] == ("returned" if raises is None else "raised")
    assert raises is None or outcomes[0][1] is raises
    assert fields(wallet) == fields(twin)
    return wallet


def purchase(
    wallet: WalletState,
    o: Order,
    config: FeatureConfig = DEFAULT_CONFIG,
    raises: type[Exception] | None = None,
) -> WalletState:
    return same(
        wallet,
        lambda w: apply_order(o, w, config),
        lambda w: ref.apply_order(o, w, config),
        raises,
    )


def observed(wallet: WalletState, ts: int, stream: str = "purchase") -> WalletState:
    return same(wallet, lambda w: WALLET_UPDATES.observe(w, ts, stream),
                lambda w: ref.observe(w, ts, stream))  # fmt: skip


def test_a_purchase_into_a_new_wallet_builds_the_python_rows():
    wallet = purchase(WalletState(), order(ingested_ms=T))
    assert wallet.address == "0xw" and wallet.purchases_total == 1
    assert type(wallet.purchases[0]) is PurchaseFact and wallet.purchases[0].lat == 52.52
    assert wallet.geo_points == [GeoPoint(T, 52.52, 13.405, "DE")]
    assert type(wallet.geo_points[0]) is GeoPoint
    assert wallet.holdings == {"0xc:1": Holding(T, 5_000)}
    assert type(wallet.holdings["0xc:1"]) is Holding
    assert wallet.mints == {"0xc:1": T} and wallet.devices == {"dev-1": T}
    assert wallet.marks == {"purchase": T} and wallet.first_seen_ms == T
    assert wallet.pruned_ms == T and wallet.applied == ["p-1"]


def test_redeliveries_are_refused_while_remembered_and_the_applied_cap_is_64():
    wallet = WalletState(address="0xw")
    for i in range(APPLIED_CAP + 6):
        purchase(wallet, order(purchase_id=f"p-{i}", ts=T + i * MINUTE_MS, ticket_id=f"t-{i}"))
    assert len(wallet.applied) == APPLIED_CAP and wallet.applied[0] == "p-6"
    before = fields(wallet)
    assert apply_order(order(purchase_id="p-40", ts=T), wallet) is False
    assert fields(wallet) == before  # nothing changed
    purchase(wallet, order(purchase_id="p-40", ts=T))
    purchase(wallet, order(purchase_id="p-0", ts=T + 70 * MINUTE_MS))  # forgotten: applied again
    assert wallet.purchases_total == APPLIED_CAP + 7 and wallet.applied[-1] == "p-0"


def test_out_of_order_events_and_ties_go_after_every_row_at_their_time():
    wallet = WalletState(address="0xw")
    times = [T, T - 1_000, T, T - 1_000, T + 5, T, T - 2_000, T - 1_000, T + 5]
    for i, ts in enumerate(times):
        purchase(wallet, order(purchase_id=f"p-{i}", ts=ts, show_id=f"s-{i}", lat=float(i),
                               ticket_id=f"t-{i % 3}", device=f"d-{i % 2}"))  # fmt: skip
    assert [p.show_id for p in wallet.purchases] == [
        "s-6", "s-1", "s-3", "s-7", "s-0", "s-2", "s-5", "s-4", "s-8"]  # fmt: skip
    assert [g.lat for g in wallet.geo_points] == [6.0, 1.0, 3.0, 7.0, 0.0, 2.0, 5.0, 4.0, 8.0]
    assert wallet.last_purchase_ms == T + 5 and wallet.first_seen_ms == T - 2_000


def test_wash_cycles_at_the_same_time_are_inserted_after_each_other():
    wallet = WalletState(address="0xw", wash_cycles=[T - 5, T, T, T + 9],
                         sent={f"t-{i}": T - 10 for i in range(3)})  # fmt: skip
    for i in range(3):
        purchase(wallet, order(purchase_id=f"p-{i}", ticket_id=f"t-{i}"))
    assert wallet.wash_cycles == [T - 5, T, T, T, T, T, T + 9]


def test_the_purchases_and_geo_caps_drop_the_oldest():
    wallet = WalletState(address="0xw")
    for i in range(PURCHASES_CAP + 30):
        ts = T + (i % 50) * MINUTE_MS  # out of order, many ties
        purchase(wallet, order(purchase_id=f"p-{i}", ts=ts, ticket_id=f"t-{i}", amount=i))
    assert len(wallet.purchases) == PURCHASES_CAP and len(wallet.geo_points) == GEO_CAP
    assert wallet.amount_total_minor == sum(range(PURCHASES_CAP + 30))


def test_the_devices_cap_drops_by_time_then_key_and_keeps_the_insertion_order():
    # Eight devices tie at the oldest time: the cap drops five of them, the smaller keys first
    # (sorted by (time, key)), whatever order they were inserted in.
    devices = {f"d-{i:02}": T - (i % 2) * HOUR_MS for i in reversed(range(DEVICES_CAP))}
    wallet = WalletState(address="0xw", devices=devices, marks={"purchase": T},
                         watermark_ms=T, pruned_ms=T)  # fmt: skip
    purchase(wallet, order(purchase_id="p-new", device="d-new", ts=T))
    assert list(wallet.devices) == [
        "d-15", "d-14", "d-13", "d-12", "d-11", "d-10", "d-08", "d-06", "d-04", "d-02", "d-00",
        "d-new"]  # fmt: skip
    purchase(wallet, order(purchase_id="p-old", device="d-13", ts=T - 5 * HOUR_MS))  # kept
    purchase(wallet, order(purchase_id="p-back", device="d-01", ts=T - HOUR_MS))  # at the end
    assert list(wallet.devices)[-1] == "d-01" and wallet.devices["d-13"] == T - HOUR_MS
    for i in range(6):
        purchase(wallet, order(purchase_id=f"q-{i}", device=f"e-{i}", ts=T + i))


def test_the_tokens_cap_on_primary_mints_and_holdings_capped_by_prune():
    wallet = WalletState(address="0xw")
    for i in range(TOKENS_CAP + 40):
        ts = T + (i % 7) * MINUTE_MS
        purchase(wallet, order(purchase_id=f"p-{i}", ts=ts, ticket_id=f"0xc:{i}",
                               channel="PRIMARY" if i % 3 else "RESALE"))  # fmt: skip
    assert len(wallet.mints) <= TOKENS_CAP
    assert len(wallet.holdings) == TOKENS_CAP + 40  # only prune caps the holdings
    observed(wallet, T + PRUNE_EVERY_MS)
    assert len(wallet.holdings) == HOLDINGS_CAP - HOLDINGS_CAP // 4


def test_holdings_at_the_same_time_are_capped_in_key_order():
    holdings = {f"k{i}": Holding(T - i % 2, -1) for i in range(HOLDINGS_CAP + 1)}
    wallet = WalletState(address="0xw", holdings=holdings)
    same(wallet, WALLET_UPDATES.prune, ref.prune)


def test_the_wash_cap_keeps_the_latest_32():
    sent = {f"t-{i}": T - DAY_MS for i in range(WASH_CAP + 8)}
    wallet = WalletState(address="0xw", sent=sent)
    for i in range(WASH_CAP + 8):
        purchase(wallet, order(purchase_id=f"p-{i}", ticket_id=f"t-{i}", ts=T - i * MINUTE_MS))
    assert len(wallet.wash_cycles) == WASH_CAP and wallet.wash_cycles[-1] == T


@pytest.mark.parametrize(
    ("sent_at", "held_at", "cycle"),
    [
        (T - 10, None, True),  # sent, not held: it comes back
        (T - 10, T - 20, True),  # held before it was sent
        (T - 10, T - 10, False),  # held since it was sent (the chain transfer came first)
        (T - 10, T - 5, False),
        (T, None, True),  # sent at the purchase's time
        (T + 1, None, False),  # sent after the purchase
        (None, None, False),
    ],
)
def test_a_token_that_comes_back_is_a_wash_cycle(sent_at, held_at, cycle):
    wallet = WalletState(address="0xw")
    if sent_at is not None:
        wallet.sent["0xc:1"] = sent_at
    if held_at is not None:
        wallet.holdings["0xc:1"] = Holding(held_at, 7)
    purchase(wallet, order(channel="RESALE"))
    assert wallet.wash_cycles == ([T] if cycle else [])
    assert WALLET_UPDATES.comes_back(wallet, "0xc:1", T) is False  # now held again at T


def test_primary_mints_and_resale_does_not():
    wallet = purchase(WalletState(mints={"0xc:1": T - DAY_MS}), order(channel="RESALE"))
    assert wallet.mints == {"0xc:1": T - DAY_MS} and wallet.holdings["0xc:1"] == (T, 5_000)
    purchase(wallet, order(purchase_id="p-2", channel="PRIMARY", ts=T - HOUR_MS))
    assert wallet.mints == {"0xc:1": T - HOUR_MS}  # a purchase sets the mint, earlier or not


@pytest.mark.parametrize(
    ("device", "lat", "lon", "country"),
    [(None, None, None, None), ("", None, None, "DE"), ("d", 1.0, None, "DE"),
     ("d", None, 2.0, "DE"), ("d", 0.0, 0.0, "XX"), ("d", -0.0, 180.0, "")],
)  # fmt: skip
def test_absent_device_and_geo_are_not_recorded(device, lat, lon, country):
    wallet = purchase(WalletState(), order(device=device, lat=lat, lon=lon, country=country,
                                           card=None, geo=lat is not None))  # fmt: skip
    assert bool(wallet.devices) == bool(device)
    assert len(wallet.geo_points) == (lat is not None and lon is not None)


def test_a_geo_point_without_a_country_is_refused_by_both():
    wallet = purchase(WalletState(), order(country=None), raises=AssertionError)
    assert len(wallet.purchases) == 1 and wallet.geo_points == []


@pytest.mark.parametrize(
    ("ingested", "skew", "mark"),
    [
        (None, 5 * MINUTE_MS, T),
        (T, 5 * MINUTE_MS, T),
        (T - 5 * MINUTE_MS, 5 * MINUTE_MS, T),  # exactly at the allowed skew
        (T - 5 * MINUTE_MS - 1, 5 * MINUTE_MS, T - 1),  # 1 ms beyond: held back
        (T - DAY_MS, 5 * MINUTE_MS, T - DAY_MS + 5 * MINUTE_MS),
        (T - 1, 0, T - 1),
        (T + HOUR_MS, 0, T),  # ingested after the event
    ],
)
def test_the_purchase_mark_runs_at_most_max_future_skew_ahead_of_ingestion(ingested, skew, mark):
    config = FeatureConfig(max_future_skew_ms=skew)
    wallet = purchase(WalletState(marks={"auth": T - DAY_MS}), order(ingested_ms=ingested), config)
    assert wallet.marks["purchase"] == mark and wallet.last_purchase_ms == T


def full_state(wm: int, at: int) -> WalletState:
    """A wallet with a row in every collection at time ``at`` (and one well inside)."""
    return WalletState(
        address="0xw", watermark_ms=wm, pruned_ms=wm - PRUNE_EVERY_MS, first_seen_ms=at,
        purchases=[fact(at), fact(at), fact(wm)], geo_points=[GeoPoint(at, 1.0, 2.0, "DE"),
                                                               GeoPoint(wm, 1.0, 2.0, "DE")],
        failed_logins=[at, at, wm], mfa_failures=[at, wm], devices={"a": at, "b": wm, "c": at},
        holdings={"k": Holding(at, 1)}, mints={"m": at, "n": wm}, sent={"s": at, "t": wm},
        resales=[ResaleFact(at, 1, -1), ResaleFact(wm, -1, 2)], wash_cycles=[at, wm],
        marks={"purchase": wm},
    )  # fmt: skip


@pytest.mark.parametrize("offset", [-1, 0, 1])
@pytest.mark.parametrize(
    "retention",
    [PURCHASE_RETENTION_MS, GEO_RETENTION_MS, AUTH_RETENTION_MS, DEVICE_RETENTION_MS,
     TOKEN_RETENTION_MS],
)  # fmt: skip
def test_prune_drops_exactly_what_is_past_retention_and_slack(retention, offset):
    wm = T + 100 * DAY_MS
    at = wm - retention - SLACK_MS + offset  # 0: exactly at the limit (dropped)
    wallet = same(full_state(wm, at), WALLET_UPDATES.prune, ref.prune)
    assert wallet.pruned_ms == wm


@pytest.mark.parametrize("since", [PRUNE_EVERY_MS - 1, PRUNE_EVERY_MS, PRUNE_EVERY_MS + 1])
def test_observe_prunes_when_the_watermark_moved_an_hour(since):
    wm = T + 100 * DAY_MS
    wallet = full_state(wm, wm - GEO_RETENTION_MS - SLACK_MS - MINUTE_MS)
    wallet.pruned_ms = wm - since
    observed(wallet, wm - 1)  # behind the watermark: no mark moves, prune as the gap says
    assert wallet.pruned_ms == (wm if since >= PRUNE_EVERY_MS else wm - since)


def test_prune_goes_by_the_slowest_streams_mark():
    wm = T + 100 * DAY_MS
    wallet = full_state(wm, wm - 2 * DAY_MS)
    wallet.marks = {"purchase": wm, "auth": wm - DAY_MS + MINUTE_MS, "transfer": wm - HOUR_MS}
    wallet = same(wallet, WALLET_UPDATES.prune, ref.prune)
    assert wallet.pruned_ms == wm - DAY_MS + MINUTE_MS and len(wallet.geo_points) == 2
    wallet.marks = {}  # no stream yet: the watermark
    wallet = same(wallet, WALLET_UPDATES.prune, ref.prune)
    assert wallet.pruned_ms == wm and len(wallet.geo_points) == 1


@pytest.mark.parametrize("stream", ["purchase", "auth", "transfer"])
@pytest.mark.parametrize("ts", [T - HOUR_MS, T, T + 1, T + PRUNE_EVERY_MS])
def test_observe_moves_each_mark_watermark_and_first_seen(stream, ts):
    wallet = WalletState(watermark_ms=T, pruned_ms=T, first_seen_ms=T - 1,
                         marks={"purchase": T, "auth": T - DAY_MS})  # fmt: skip
    observed(wallet, ts, stream)
    observed(WalletState(), ts, stream)


def test_rows_out_of_order_are_bisected_and_pruned_as_python_does():
    wm = T + 100 * DAY_MS
    old = wm - PURCHASE_RETENTION_MS - SLACK_MS - 1
    wallet = WalletState(purchases=[fact(wm), fact(old), fact(wm - 5), fact(old)],
                         failed_logins=[wm, 1, wm - 1, 2], wash_cycles=[wm, 3],
                         marks={"purchase": wm}, watermark_ms=wm)  # fmt: skip
    same(wallet, WALLET_UPDATES.prune, ref.prune)  # the first row is recent: nothing dropped
    purchase(wallet, order(ts=wm - 4, purchase_id="p-2"))
    purchase(wallet, order(ts=wm - 6, purchase_id="p-3", ticket_id="t-3"))


def test_a_state_decoded_from_the_table_is_updated_in_place():
    wallet = WalletState(address="0xw")
    for i in range(30):
        purchase(wallet, order(purchase_id=f"p-{i}", ts=T + i * HOUR_MS, device=f"d-{i % 20}"))
    decoded = statecodec.decode(statecodec.encode(wallet))
    purchase(decoded, order(purchase_id="p-30", ts=T + 30 * HOUR_MS, device="d-new"))
    assert statecodec.decode(statecodec.encode(decoded)).to_dict() == decoded.to_dict()


LIMITS = dict(purchases_cap=1, geo_cap=1, devices_cap=1, tokens_cap=1, holdings_cap=1,
              wash_cap=1, applied_cap=1, auth_cap=1, resales_cap=1, login_window_ms=1,
              slack_ms=1, prune_every_ms=1, purchase_retention_ms=1, geo_retention_ms=1,
              auth_retention_ms=1, device_retention_ms=1, token_retention_ms=1,
              failed_login_kinds=FAILED_LOGIN_KINDS, mfa_failed_kinds=MFA_FAILED_KINDS,
              login_ok_kinds=LOGIN_OK_KINDS, order_fields=Order._fields,
              transfer_fields=Transfer._fields, purchase_fact=PurchaseFact, geo_point=GeoPoint,
              holding=Holding, resale_fact=ResaleFact, wallet_state=WalletState)  # fmt: skip


def test_a_layout_the_update_does_not_know_is_refused():
    class Moved(tuple):
        _fields = ("price_minor", "acquired_ms")

    WalletUpdates(**LIMITS)
    with pytest.raises(ValueError, match="Holding fields"):
        WalletUpdates(**{**LIMITS, "holding": Moved})
    with pytest.raises(ValueError, match="ResaleFact fields"):
        WalletUpdates(**{**LIMITS, "resale_fact": Holding})
    with pytest.raises(ValueError, match="Order fields"):
        WalletUpdates(**{**LIMITS, "order_fields": Order._fields[1:]})
    with pytest.raises(ValueError, match="Transfer fields"):
        WalletUpdates(**{**LIMITS, "transfer_fields": Transfer._fields[::-1]})
    with pytest.raises(ValueError, match="NamedTuple"):
        WalletUpdates(**{**LIMITS, "geo_point": dict})


@pytest.mark.parametrize(
    ("name", "kinds"),
    [("mfa_failed_kinds", {"MFA_FAILED", "LOGIN_FAILED"}),
     ("login_ok_kinds", {"LOGIN_OK", "PASSWORD_CHANGED"}),
     ("failed_login_kinds", {"EMAIL_CHANGED"})],
)  # fmt: skip
def test_auth_kinds_in_two_of_the_kinds_are_refused(name, kinds):
    # Python tests them in turn; the native update looks a kind up once, so they must not overlap
    with pytest.raises(ValueError, match="in two of the kinds"):
        WalletUpdates(**{**LIMITS, name: frozenset(kinds)})


AUTH_KINDS = ["LOGIN_FAILED", "ADMIN_LOGIN_FAILED", "MFA_FAILED", "LOGIN_OK", "ADMIN_LOGIN",
              "PASSWORD_CHANGED", "EMAIL_CHANGED", "OTHER"]  # fmt: skip
TRANSFER_KINDS = ["MINT", "SALE", "TRANSFER", "BURN"]
ADDRESSES = ["0xa", "0xb", "0xc"]
ZERO = "0x" + "0" * 40


def auth(
    wallet: WalletState, event: Mapping[str, object], ts: int = T,
    raises: type[Exception] | None = None,
) -> WalletState:  # fmt: skip
    return same(wallet, lambda w: apply_auth_at(event, ts, w),
                lambda w: ref.apply_auth_at(event, ts, w), raises)  # fmt: skip


def chain(wallet: WalletState, t: Transfer, raises: type[Exception] | None = None) -> WalletState:
    return same(wallet, lambda w: apply_read_transfer(t, w),
                 lambda w: ref.apply_read_transfer(t, w), raises)  # fmt: skip


def event(kind: str = "LOGIN_FAILED", event_id: str = "e-1", **fields) -> dict[str, object]:
    return {"event_id": event_id, "kind": kind, "wallet": "0xw", **fields}


def xfer(kind: str = "TRANSFER", receiver: str = "0xw", sender: str = "0xs", ts: int = T,
         record_id: str = "0xt:0:1", key: str = "0xc:1") -> Transfer:  # fmt: skip
    return Transfer(ts, receiver, sender, record_id, key, kind)


def auth_state() -> WalletState:
    """A wallet with something in every field an auth event touches."""
    return WalletState(
        address="0xw", watermark_ms=T, pruned_ms=T - 1, first_seen_ms=T - DAY_MS,
        failed_logins=[T - HOUR_MS - 1, T - HOUR_MS, T - HOUR_MS + 1, T - 5, T, T],
        mfa_failures=[T - 3, T],
        login_ok_ms=T - MINUTE_MS, fails_before_login_ok=3, password_changed_ms=T - 7,
        email_changed_ms=T + 7, geo_points=[GeoPoint(T - 1, 1.0, 2.0, "DE"),
                                            GeoPoint(T, 3.0, 4.0, "FR")],
        marks={"auth": T, "purchase": T - HOUR_MS}, applied=["e-0"],
    )  # fmt: skip


@pytest.mark.parametrize("kind", [*AUTH_KINDS, "ADMIN_MFA_FAILED", "", "login_failed"])
@pytest.mark.parametrize("offset", [-HOUR_MS - 1, -HOUR_MS, -MINUTE_MS - 1, -MINUTE_MS, -7, 0,
                                    7, 8, HOUR_MS, 2 * HOUR_MS])  # fmt: skip
@pytest.mark.parametrize("geo", [None, {}, {"lat": -0.0, "lon": 180.0, "country": "XX"}])
def test_each_auth_kind_at_each_time_records_what_python_recorded(kind, offset, geo):
    wallet = auth(auth_state(), event(kind, geo=geo), T + offset)
    assert wallet.applied == ["e-0", "e-1"] and wallet.marks["auth"] == max(T, T + offset)
    assert len(wallet.geo_points) == 2 + bool(geo)


def test_auth_fields_from_scratch_and_their_python_answers():
    wallet = WalletState(address="0xw")
    for i, ts in enumerate([T, T - 2, T, T - HOUR_MS, T - HOUR_MS - 1, T + 1, T - HOUR_MS + 1]):
        auth(wallet, event("LOGIN_FAILED", f"f-{i}"), ts)
    assert wallet.failed_logins == [T - HOUR_MS - 1, T - HOUR_MS, T - HOUR_MS + 1, T - 2, T, T,
                                    T + 1]  # fmt: skip
    auth(wallet, event("ADMIN_LOGIN", "l-1"), T)  # (T - 1 h, T]: 4 failed logins
    assert wallet.login_ok_ms == T and wallet.fails_before_login_ok == 4
    auth(wallet, event("LOGIN_OK", "l-2"), T - 1)  # an older login changes nothing
    assert wallet.login_ok_ms == T and wallet.fails_before_login_ok == 4
    auth(wallet, event("LOGIN_OK", "l-3"), T + 1)  # (T + 1 - 1 h, T + 1]: T - 1 h + 1 out
    assert wallet.fails_before_login_ok == 4
    for name, kind in (("password_changed_ms", "PASSWORD_CHANGED"),
                       ("email_changed_ms", "EMAIL_CHANGED")):  # fmt: skip
        for i, ts in enumerate([T, T - 1, T + 1, T + 1]):
            auth(wallet, event(kind, f"{kind}-{i}"), ts)
        assert getattr(wallet, name) == T + 1
        setattr(wallet, name, 0)  # 0 is no time (``or ts``): a change at any time replaces it
        auth(wallet, event(kind, f"{kind}-x"), T - DAY_MS)
        assert getattr(wallet, name) == T - DAY_MS
    for i in range(3):
        auth(wallet, event("ADMIN_MFA_FAILED", f"m-{i}"), T - i)
    assert wallet.mfa_failures == [T - 2, T - 1, T]
    assert wallet.marks == {"auth": T + 1} and wallet.first_seen_ms == T - DAY_MS


def test_an_auth_event_is_applied_once_and_the_auth_and_geo_caps_keep_the_latest():
    wallet = WalletState(address="0xw")
    geo = {"lat": 1.0, "lon": 2.0, "country": "DE"}
    for i in range(AUTH_CAP + 10):
        kind = ("LOGIN_FAILED", "MFA_FAILED")[i % 2]
        auth(wallet, event(kind, f"e-{i}", geo=geo), T + (i % 9) * MINUTE_MS)
    assert len(wallet.failed_logins) == len(wallet.mfa_failures) == (AUTH_CAP + 10) // 2
    for i in range(AUTH_CAP + 10):
        auth(wallet, event("LOGIN_FAILED", f"g-{i}"), T + (i % 5) * MINUTE_MS)
    assert len(wallet.failed_logins) == AUTH_CAP and len(wallet.geo_points) == GEO_CAP
    before = fields(wallet)
    auth(wallet, event("LOGIN_FAILED", f"g-{AUTH_CAP}"), T + DAY_MS)  # a redelivery
    assert fields(wallet) == before


def test_an_auth_event_as_any_mapping_and_kinds_that_are_not_strs():
    wallet = WalletState(address="0xw")
    proxy = MappingProxyType(event("MFA_FAILED", geo={"lat": 1.0, "lon": 2.0, "country": "DE"}))
    auth(wallet, proxy)  # ``event.get("geo")`` of a mapping that is not a dict
    assert wallet.mfa_failures == [T] and len(wallet.geo_points) == 1
    auth(wallet, event(None, "e-2"))  # hashable, in no set: nothing but the event
    auth(wallet, event(7, "e-3", geo={"lat": 1.0, "lon": 2.0, "country": "DE"}))
    auth(wallet, event(["LOGIN_FAILED"], "e-4"), raises=TypeError)  # unhashable: both raise
    assert wallet.applied[-1] == "e-4"  # remembered before the kind was read, by both
    auth(wallet, event("LOGIN_FAILED", "e-5", geo={"lat": 1.0}), raises=KeyError)
    assert wallet.failed_logins == [T]  # recorded before the geo point failed, by both
    auth(wallet, {"kind": "LOGIN_FAILED"}, raises=KeyError)  # no event_id


@pytest.mark.parametrize("kind", TRANSFER_KINDS)
@pytest.mark.parametrize("side", ["receiver", "sender", "both", "neither"])
@pytest.mark.parametrize("held", [None, T - 10, T, T + 10])
@pytest.mark.parametrize("minted", [None, T - 20, T, T + 20])
@pytest.mark.parametrize("sent", [None, T - 5, T, T + 5])
def test_each_transfer_kind_on_each_side_records_what_python_recorded(
    kind, side, held, minted, sent
):
    wallet = WalletState(address="0xw", holdings={"0xc:0": Holding(T, 1)},
                         mints={"0xc:0": T - 1}, sent={"0xc:0": T - 1},
                         resales=[ResaleFact(T - 1, 1, 2), ResaleFact(T + 1, 3, -1)],
                         wash_cycles=[T - 1, T, T + 1])  # fmt: skip
    if held is not None:
        wallet.holdings["0xc:1"] = Holding(held, 4_200)
    if minted is not None:
        wallet.mints["0xc:1"] = minted
    if sent is not None:
        wallet.sent["0xc:1"] = sent
    wallet.holdings["0xc:2"] = Holding(T - 1, 5)  # after the token: its place is kept or not
    receiver = "0xw" if side in ("receiver", "both") else "0xr"
    sender = "0xw" if side in ("sender", "both") else "0xs"
    chain(wallet, xfer(kind, receiver, sender))
    assert wallet.marks == {"transfer": T} and wallet.applied == ["0xt:0:1"]


def test_a_transfer_is_applied_once_and_received_then_sent_by_a_self_transfer():
    wallet = chain(WalletState(address="0xw"), xfer("MINT", "0xw", ZERO, T - DAY_MS, "m:0:1"))
    assert wallet.mints == {"0xc:1": T - DAY_MS} and wallet.holdings == {"0xc:1": (T - DAY_MS, -1)}
    assert type(wallet.holdings["0xc:1"]) is Holding
    chain(wallet, xfer("SALE", "0xw", "0xw", T, "s:0:1"))
    assert wallet.resales == [ResaleFact(T, DAY_MS, DAY_MS)] and wallet.mints == {}
    assert type(wallet.resales[0]) is ResaleFact and wallet.holdings == {}
    assert wallet.sent == {"0xc:1": T}
    before = fields(wallet)
    chain(wallet, xfer("SALE", "0xw", "0xw", T + 1, "s:0:1"))  # a redelivery
    assert fields(wallet) == before
    chain(wallet, xfer("TRANSFER", "0xw", "0xo", T + 2, "t:0:1"))  # it comes back
    assert wallet.wash_cycles == [T + 2] and wallet.holdings == {"0xc:1": (T + 2, -1)}
    chain(wallet, xfer("MINT", "0xw", ZERO, T + 3, "t:0:2", "0xc:2"))
    chain(wallet, xfer("TRANSFER", "0xw", "0xo", T + 4, "t:0:3", "0xc:2"))  # held: no cycle
    chain(wallet, xfer("BURN", ZERO, "0xw", T + 5, "b:0:1", "0xc:2"))
    assert wallet.holdings == {"0xc:1": (T + 2, -1)} and len(wallet.resales) == 1
    assert wallet.wash_cycles == [T + 2] and wallet.mints == {"0xc:2": T + 3}


def test_a_token_coming_back_by_transfer_and_by_mint():
    wallet = WalletState(address="0xw", sent={"0xc:1": T - 10, "0xc:2": T - 10},
                         holdings={"0xc:2": Holding(T - 20, 9)})  # fmt: skip
    chain(wallet, xfer("TRANSFER", record_id="a"))
    chain(wallet, xfer("SALE", record_id="b", key="0xc:2"))
    assert wallet.wash_cycles == [T, T]
    assert wallet.holdings == {"0xc:2": Holding(T - 20, 9), "0xc:1": Holding(T, -1)}
    wallet.sent["0xc:3"] = T - 10
    chain(wallet, xfer("MINT", record_id="c", key="0xc:3"))  # a mint is no cycle
    assert wallet.wash_cycles == [T, T]
    chain(wallet, xfer("TRANSFER", record_id="d", key="0xc:1", ts=T - 30))  # earlier: moved back
    assert wallet.holdings["0xc:1"] == Holding(T - 30, -1)


def test_the_tokens_resales_and_wash_caps_over_chain_transfers():
    wallet = WalletState(address="0xw")
    for i in range(TOKENS_CAP + 40):
        chain(wallet, xfer("MINT", "0xw", ZERO, T + (i % 7), f"m-{i}", f"0xc:{i}"))
    assert len(wallet.mints) <= TOKENS_CAP
    for i in range(TOKENS_CAP + 40):
        kind = ("SALE", "TRANSFER")[i % 2]
        chain(wallet, xfer(kind, "0xo", "0xw", T + 100 + (i % 11), f"s-{i}", f"0xc:{i}"))
    assert len(wallet.sent) <= TOKENS_CAP and len(wallet.resales) == RESALES_CAP
    for i in range(WASH_CAP + 8):
        chain(wallet, xfer("TRANSFER", "0xw", "0xo", T + 200 + i % 3, f"w-{i}", f"0xc:{i + 40}"))
    assert len(wallet.wash_cycles) == WASH_CAP


def test_a_transfer_that_is_not_a_transfer_or_has_no_int_time_is_refused():
    wallet = WalletState(address="0xw")
    with pytest.raises(TypeError):
        WALLET_UPDATES.apply_transfer({"record_id": "x"}, wallet)
    assert wallet.applied == []
    bad = Transfer("T", "0xw", "0xs", "x", "0xc:1", "TRANSFER")
    with pytest.raises(TypeError):  # Python raised too, in observe (after the holding): the
        ref.apply_read_transfer(bad, copy.deepcopy(wallet))  # native update assumes int times
    with pytest.raises(TypeError):
        apply_read_transfer(bad, wallet)
    assert wallet.holdings == {}


def test_auth_and_transfer_updates_keep_no_memory():
    geo = {"lat": 1.0, "lon": 2.0, "country": "DE"}
    events = [event(kind, f"e-{i}", geo=geo if i % 2 else None)
              for i, kind in enumerate([*AUTH_KINDS, *AUTH_KINDS])]  # fmt: skip
    transfers = [xfer(kind, "0xw", sender, T + i, f"t-{i}", f"0xc:{i % 3}")
                 for i, (kind, sender) in enumerate(
                     [(k, s) for k in TRANSFER_KINDS for s in ("0xw", "0xs", ZERO)])]  # fmt: skip

    def once() -> None:
        wallet = WalletState(address="0xw", sent={"0xc:1": T - 1}, mints={"0xc:2": T - 9})
        for i, e in enumerate(events):
            WALLET_UPDATES.apply_auth(e, T + i, wallet)
            WALLET_UPDATES.apply_auth(e, T + i, wallet)  # a redelivery
        for t in transfers:
            WALLET_UPDATES.apply_transfer(t, wallet)
            WALLET_UPDATES.apply_transfer(t, wallet)

    for _ in range(200):
        once()
    before = sys.getallocatedblocks()
    for _ in range(2_000):
        once()
    assert sys.getallocatedblocks() - before < 200  # a leak would be thousands of blocks


# Gaps between events (ms), their weights and how many tokens change hands: over days, where
# rows expire and wallets are pruned, and within about an hour, where every collection
# reaches its cap (no row is old enough to expire).
PACES = {
    "days": ([0, 1, 1_000, MINUTE_MS, 20 * MINUTE_MS, 3 * HOUR_MS, 2 * DAY_MS, 40 * DAY_MS],
             [20, 5, 10, 20, 30, 10, 1, 0.2], 300),
    "minutes": ([0, 1, 100, 1_000], [30, 20, 30, 20], 1_000),
}  # fmt: skip
CAPPED = {"failed_logins": AUTH_CAP, "mfa_failures": AUTH_CAP, "resales": RESALES_CAP,
          "geo_points": GEO_CAP, "purchases": PURCHASES_CAP}  # fmt: skip


@pytest.mark.parametrize("pace", PACES)
def test_thousands_of_mixed_events_leave_the_reference_states(pace):
    """Purchases, auths and chain transfers (native against the reference), interleaved out
    of order with redeliveries, ties, late events and gaps of days or of milliseconds, over
    three wallets that are each other's counterparties (self-transfers too)."""
    rng = random.Random(20261206)
    native: dict[str, WalletState] = {a: WalletState(address=a) for a in ADDRESSES}
    reference = copy.deepcopy(native)
    clock, ids = T, []
    counts = dict.fromkeys(["purchase", "auth", "transfer", "late", "redelivered", "wash",
                            "devices dropped", "tokens dropped", "capped"], 0)  # fmt: skip
    gaps, weights, tokens = PACES[pace]
    for n in range(6_000):
        clock += rng.choices(gaps, weights)[0]
        ts = clock - rng.choice([0, 0, 0, 1, MINUTE_MS, 4 * MINUTE_MS, 29 * MINUTE_MS, 2 * HOUR_MS])
        if ids and rng.random() < 0.05:
            record_id = rng.choice(ids[-80:])  # a redelivery (or one forgotten beyond the cap)
            counts["redelivered"] += 1
        else:
            record_id = f"r-{n}"
            ids.append(record_id)
        kind = rng.choices(["purchase", "auth", "transfer"], [5, 2, 3])[0]
        token = f"0xc:{rng.randrange(tokens)}"
        if kind == "purchase":
            address = rng.choice(ADDRESSES)
            has_geo = rng.random() < 0.7
            o = order(ts=ts, purchase_id=record_id, wallet=address, ticket_id=token,
                      ingested_ms=rng.choice([None, ts, ts - 6 * MINUTE_MS, ts + MINUTE_MS]),
                      channel=rng.choice(["PRIMARY", "RESALE"]),
                      device=rng.choice([None, "", *(f"d-{i}" for i in range(20))]),
                      lat=rng.uniform(-90, 90) if has_geo else None,
                      lon=rng.uniform(-180, 180) if has_geo else None,
                      country="DE" if has_geo else None, amount=rng.randrange(1, 10**6),
                      unit=rng.randrange(1, 10**5))  # fmt: skip
            steps = [(address, lambda w, o=o: apply_order(o, w),
                      lambda w, o=o: ref.apply_order(o, w))]  # fmt: skip
            lateness = DEFAULT_CONFIG.allowed_lateness_ms
        elif kind == "auth":
            address = rng.choice(ADDRESSES)
            geo = rng.choice([{"lat": rng.uniform(-90, 90), "lon": 2.5, "country": "FR"}, None,
                              {}, "absent"])  # fmt: skip
            event = {"event_id": record_id, "kind": rng.choice([*AUTH_KINDS, "ADMIN_MFA_FAILED"])}
            if geo != "absent":
                event["geo"] = geo
            steps = [(address, lambda w, e=event, ts=ts: apply_auth_at(e, ts, w),
                      lambda w, e=event, ts=ts: ref.apply_auth_at(e, ts, w))]  # fmt: skip
            lateness = DEFAULT_CONFIG.allowed_lateness_ms
        else:
            receiver, sender = rng.choice(ADDRESSES), rng.choice([*ADDRESSES, ZERO])
            t = Transfer(ts, receiver, sender, record_id, token, rng.choice(TRANSFER_KINDS))
            sides = sorted({receiver, sender} - {ZERO})
            steps = [(a, lambda w, t=t: apply_read_transfer(t, w),
                      lambda w, t=t: ref.apply_read_transfer(t, w)) for a in sides]  # fmt: skip
            lateness = DEFAULT_CONFIG.chain_lateness_ms
        try:
            for address, _, _ in steps:  # all-or-nothing, as FeatureEngine admits
                for wallets in (native, reference):
                    check_lateness(kind, ts, wallets[address], lateness)
        except LateEventError:
            counts["late"] += 1
            continue
        counts[kind] += 1
        for address, run_native, run_reference in steps:
            wallet = native[address]
            washes, devices = len(wallet.wash_cycles), len(wallet.devices)
            held = len(wallet.mints) + len(wallet.sent)
            assert run_native(wallet) == run_reference(reference[address])
            # Every field's value in order (msgpack keeps list and dict orders, ints apart
            # from floats); repr too (the rows' classes) after every event over days, and
            # every 100th over minutes, where the states are full and repr is slow
            assert encode(wallet) == encode(reference[address]), (n, kind, address)
            if pace == "days" or n % 100 == 0:
                assert fields(wallet) == fields(reference[address]), (n, kind, address)
            counts["wash"] += len(wallet.wash_cycles) > washes
            counts["devices dropped"] += len(wallet.devices) < devices
            counts["tokens dropped"] += len(wallet.mints) + len(wallet.sent) < held - 1
            counts["capped"] += any(len(getattr(wallet, f)) == c for f, c in CAPPED.items())
    for address, wallet in native.items():
        assert fields(wallet) == fields(reference[address]), address
    if pace == "days":  # rows expire before any ring reaches its cap
        assert counts.pop("capped") == 0
    assert counts.pop("tokens dropped") > 5  # each time a quarter of TOKENS_CAP goes
    assert min(counts.values()) > 50, counts  # every kind of event and update was exercised
