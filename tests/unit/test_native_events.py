"""The native admission of auth events and chain transfers (``processors.apply.EVENTS``,
``check_lateness``, ``apply_auth``, ``apply_transfer``; ``read_transfer``; ``ExpiryWheel``)
does what the Python it replaced did (``tests/support/events_reference.py``): the same
transfers read and the same errors raised for broken records, the same events admitted or
refused as late with the same message, the same wallets forgotten when expiry deletes them by
the event's time, the same states after the live worker's one-wallet applies (mints, burns, a
wallet to itself, redeliveries, one side late), the same wheel, and the same engine states and
rows event by event."""

from __future__ import annotations

import copy
import random
from collections import UserDict
from datetime import UTC, datetime, timedelta, timezone

import pytest

from models.simulator import SimConfig, simulate
from processors.apply import LateEventError, apply_auth, apply_transfer, check_lateness
from processors.expiry import (
    WALLET_IDLE_MS,
    ExpiryWheel,
    due_ms,
    is_summary,
    summarise,
    worth_keeping,
)
from processors.features import FeatureEngine
from processors.records import read_transfer, token_key
from processors.state import ResaleFact, WalletState
from processors.timeutil import HOUR_MS, MINUTE_MS
from tests.support import engine_reference, events_reference
from tests.support.engine_reference import ReferenceEngine
from tests.unit.test_engine_glue import IDLE, T0, ZERO, A, B, C, _outcome, _state, auth, transfer

pytestmark = pytest.mark.unit

D = "0x" + "d" * 40


def _outcome_of(call) -> tuple:
    """("ok", the result and its fields' types) or the error's type, message and, for a late
    event, what it carries."""
    try:
        result = call()
    except Exception as exc:  # noqa: BLE001 - the outcome compared is the error itself
        late = (
            (exc.kind, exc.key, exc.ts_ms, exc.watermark_ms, exc.lateness_ms)
            if isinstance(exc, LateEventError)
            else None
        )
        return type(exc), str(exc), late
    fields = list(result) if isinstance(result, tuple) else []
    return "ok", result, type(result), [type(v) for v in fields]


def _same(native, python, *args) -> tuple:
    """``native(*args)`` and ``python(*args)`` on deep copies of ``args``: the same outcome
    (result or error) and the same arguments after; the outcome."""
    mine, theirs = copy.deepcopy(args), copy.deepcopy(args)
    outcome = _outcome_of(lambda: native(*mine))
    assert outcome == _outcome_of(lambda: python(*theirs)), args
    assert [getattr(a, "to_dict", lambda a=a: a)() for a in mine] == [
        getattr(a, "to_dict", lambda a=a: a)() for a in theirs
    ]
    return outcome


def test_read_transfer_reads_edge_records_and_raises_as_before():
    _, base = transfer(T0, "SALE", "0xAbC" + "0" * 37, C, "7")
    east = timezone(timedelta(hours=2))
    records = [
        base,
        {**base, "token_id": 42, "log_index": "3"},  # an int token, a str log index
        {**base, "log_index": 2**70, "token_id": True},  # beyond i64; a bool (f"{True}")
        {**base, "block_time": 1_740_960_612_345},  # ms already
        {**base, "block_time": T0.astimezone(east)},  # another zone: to_ms converts it
        {**base, "to_address": "0xÄBC", "contract": "0xÉ" + "F" * 39},  # non-ASCII: str.lower
        {**base, "token_id": "\ud800x"},  # a lone surrogate in the record id and key
        {**base, "to_address": ZERO, "kind": "BURN"},
        UserDict(base),  # any mapping
    ]
    broken = [
        {**base, "block_time": T0.replace(tzinfo=None)},  # naive: refused
        {**base, "block_time": None},  # AssertionError
        {**base, "block_time": "2026-03-01"},  # TypeError
        {**base, "from_address": 7},  # no lower
        {**base, "contract": None},
    ]
    broken += [{k: v for k, v in base.items() if k != name} for name in base]  # KeyError
    outcomes = [
        _same(read_transfer, events_reference.read_transfer, r)[0] for r in records + broken
    ]
    assert outcomes[: len(records)] == ["ok"] * len(records)
    assert outcomes.count("ok") == len(records) + 6  # the six fields read_transfer skips
    for contract, token in (("0xAB", "1"), ("0xÉé", 7), ("x", "\ud800"), (None, "1"), ("a", 2.5)):
        _same(token_key, events_reference.token_key, contract, token)


def _wallets() -> list[WalletState]:
    """A new wallet, wallets with marks, and wallets idle long enough to be deleted (or kept)."""
    t = int(T0.timestamp() * 1000)
    marked = WalletState(
        address=A,
        watermark_ms=t,
        first_seen_ms=t - HOUR_MS,
        marks={"purchase": t, "auth": t - MINUTE_MS, "transfer": t - HOUR_MS},
    )
    auth_only = WalletState(
        address=B,
        watermark_ms=t - WALLET_IDLE_MS,
        login_ok_ms=t - IDLE_MS,
        marks={"auth": t - WALLET_IDLE_MS},
        failed_logins=[t - IDLE_MS],
    )
    holder = WalletState(
        address=C.lower(),
        watermark_ms=t - WALLET_IDLE_MS,
        holdings={"0xe:1": (t - IDLE_MS, -1)},  # type: ignore[dict-item]
        marks={"transfer": t - WALLET_IDLE_MS},
    )
    return [WalletState(address=D), marked, auth_only, holder]


IDLE_MS = WALLET_IDLE_MS


def test_check_lateness_admits_refuses_and_forgets_as_before():
    t = int(T0.timestamp() * 1000)
    times = [
        t - HOUR_MS - 1,
        t - 30 * MINUTE_MS - 1,
        t - 30 * MINUTE_MS,
        t - 5 * MINUTE_MS - 1,
        t - 5 * MINUTE_MS,
        t,
        t + 1,
        t + HOUR_MS,
    ]
    outcomes = set()
    for wallet in _wallets():
        for kind in ("purchase", "auth", "transfer"):
            for ts in times:
                for lateness in (0, 5 * MINUTE_MS, 30 * MINUTE_MS):
                    outcomes.add(
                        _same(
                            check_lateness,
                            events_reference.check_lateness,
                            kind,
                            ts,
                            wallet,
                            lateness,
                        )[0]
                    )
    assert outcomes == {"ok", LateEventError}  # some admitted, some late
    deletable = _wallets()[2]
    check_lateness("auth", t + 1, deletable, 0)  # idle since t - WALLET_IDLE_MS: forgotten
    assert deletable == WalletState(address=B)


def test_the_live_applies_leave_the_states_they_left():
    """The live worker's one wallet an event: each side of a transfer applied on its own (a
    mint's receiver, a burn's sender, a wallet to itself, both sides of a sale), redeliveries,
    one side late, a wallet its event finds deleted by expiry, auth events with or without a
    wallet in the record or the state."""
    t = T0
    events = [
        transfer(t, "MINT", ZERO, A, "1"),
        transfer(t, "MINT", ZERO, A, "1"),  # redelivered
        transfer(t + timedelta(minutes=1), "TRANSFER", A, A, "1"),
        transfer(t + timedelta(minutes=2), "SALE", A, C, "1"),
        transfer(t + timedelta(minutes=4), "BURN", C.lower(), ZERO, "1"),
        transfer(t + timedelta(hours=2), "MINT", ZERO, B, "8"),
        transfer(t + timedelta(minutes=20), "SALE", A, B, "2"),  # late for B only
        auth(t + timedelta(hours=3), "LOGIN_FAILED"),
        auth(t + timedelta(hours=3), "LOGIN_FAILED"),
        auth(t + timedelta(hours=3), "LOGIN_OK", None),
        auth(t + timedelta(hours=3), "LOGIN_FAILED", D),  # auth only: deleted when idle
        auth(t + IDLE + timedelta(hours=4), "LOGIN_OK", D),  # finds D deleted
        transfer(t + IDLE * 2, "SALE", B, A, "8"),
        auth(t + IDLE * 2, "PASSWORD_CHANGED", B),
        auth(t + IDLE * 2 - timedelta(minutes=6), "EMAIL_CHANGED", B),  # late
    ]
    states: dict[str, WalletState] = {}
    for kind, record in events:
        if kind == "auth":  # the agent skips an event without a wallet; the apply does not
            sides, apply, reference = (
                [record["wallet"] or ""],
                apply_auth,
                events_reference.apply_auth,
            )
        else:  # a transfer on each side's own topic (track_transfers)
            sides = [a.lower() for a in (record["to_address"], record["from_address"])]
            sides = [a for a in dict.fromkeys(sides) if a != ZERO]
            apply, reference = apply_transfer, events_reference.apply_transfer
        _same(apply, reference, record, WalletState())  # no address yet: the receiver's
        for side in sides:
            wallet = states.get(side) or WalletState(address=side)
            _same(apply, reference, record, wallet)
            _outcome_of(lambda a=apply, r=record, w=wallet: a(r, w))  # late: compared above
            states[side] = wallet
    login = int((t + IDLE + timedelta(hours=4)).timestamp() * 1000)
    assert states[D].first_seen_ms == login and not states[D].failed_logins  # forgotten first


def _python_events_engine(monkeypatch: pytest.MonkeyPatch) -> FeatureEngine:
    """The frozen engine glue with the Python transfer reading, check, due time and wheel."""
    monkeypatch.setattr(engine_reference, "check_lateness", events_reference.check_lateness)
    monkeypatch.setattr(engine_reference, "due_ms", events_reference.due_ms)
    monkeypatch.setattr(engine_reference, "read_transfer", events_reference.read_transfer)
    engine = ReferenceEngine()
    engine._wheel = events_reference.ExpiryWheel()  # type: ignore[assignment]
    return engine


def test_the_engine_steps_as_with_the_python_admission(monkeypatch: pytest.MonkeyPatch):
    t = T0
    edge = [
        transfer(t, "MINT", ZERO, A, "1"),
        transfer(t, "TRANSFER", ZERO, ZERO, "9"),
        transfer(t, "MINT", ZERO, A, "1"),  # a redelivery
        transfer(t + timedelta(minutes=1), "TRANSFER", A, A, "1"),
        transfer(t + timedelta(minutes=2), "SALE", A, C, "1"),
        transfer(t + timedelta(minutes=4), "BURN", C, ZERO, "1"),
        transfer(t + timedelta(hours=2), "MINT", ZERO, B, "8"),
        transfer(t + timedelta(minutes=20), "SALE", A, B, "2"),  # B late: A untouched
        auth(t + timedelta(hours=3), "LOGIN_FAILED", D),  # auth only
        transfer(t + IDLE + timedelta(hours=4), "SALE", A, D, "3"),  # D deleted at its time
        auth(t + IDLE + timedelta(hours=4), "LOGIN_OK", None),
    ]
    week = [e for e in simulate(SimConfig(seed=4, days=2, n_users=300)) if e[0] != "label"]
    for events in (edge, week):
        old, new = _python_events_engine(monkeypatch), FeatureEngine()
        for i, (kind, record) in enumerate(events):
            assert _outcome(new, kind, record) == _outcome(old, kind, record), i
            if events is edge or i % 997 == 0:
                assert _state(new) == _state(old), i
        assert _state(new) == _state(old)


def test_the_expiry_rules_answer_as_before():
    """``is_summary``, ``worth_keeping`` and ``due_ms`` of every wallet of two simulated weeks,
    of their summaries at a later time, and of hand-built ones."""
    engine = FeatureEngine()
    for kind, record in simulate(SimConfig(seed=6, days=14, n_users=300)):
        if kind != "label":
            _outcome_of(lambda k=kind, r=record: engine.process_row(k, r))
    wallets = list(engine.wallets.values())
    later = engine.watermark_ms + WALLET_IDLE_MS
    wallets += [s for w in wallets if (s := summarise(w, later)) is not None]
    t = int(T0.timestamp() * 1000)
    wallets += [
        WalletState(),
        WalletState(watermark_ms=t),
        WalletState(watermark_ms=t, applied=["a"] * 9),
        WalletState(watermark_ms=t, applied=["a"] * 8, wash_cycles=[t - 5, t + 3]),
        WalletState(watermark_ms=t, resales=[ResaleFact(t + 9, 1, -1), ResaleFact(t - 1, 2, 3)]),
        WalletState(watermark_ms=t, purchases_total=1),
        WalletState(watermark_ms=t, sent={"k": 1}),
        WalletState(watermark_ms=t, failed_logins=[t], wash_cycles=[t]),
    ]
    answers = set()
    for wallet in wallets:
        for native, python in (
            (is_summary, events_reference.is_summary),
            (worth_keeping, events_reference.worth_keeping),
            (due_ms, events_reference.due_ms),
        ):
            answers.add((python.__name__, _same(native, python, wallet)[1]))
    assert {a for name, a in answers if name != "due_ms"} == {True, False}
    assert ("due_ms", None) in answers and len(answers) > 100


def test_the_wheel_files_and_pops_as_before():
    rng = random.Random(7)
    mine, theirs = ExpiryWheel(), events_reference.ExpiryWheel()
    now = 0
    for step in range(3000):
        if rng.random() < 0.8:
            key = rng.choice([f"0x{i:040x}" for i in range(60)] + [7, ("a", 1)])
            due = rng.choice([None, now + rng.randrange(-HOUR_MS, 40 * HOUR_MS), -1, 0])
            mine.file(key, due)
            theirs.file(key, due)
        else:
            now += rng.randrange(0, 5 * HOUR_MS)
            assert mine.pop_due(now) == theirs.pop_due(now), step
        assert mine.buckets == theirs.buckets and len(mine) == len(theirs)
    assert ExpiryWheel(10).bucket_ms == 10 and ExpiryWheel().bucket_ms == HOUR_MS
    with pytest.raises(ValueError):
        ExpiryWheel(0)


def test_a_naive_or_foreign_time_is_refused_or_converted_as_before():
    _, late_naive = auth(T0, "LOGIN_OK")
    late_naive["occurred_at"] = T0.replace(tzinfo=None)
    _, east = auth(T0.astimezone(timezone(timedelta(hours=-5))), "LOGIN_OK")
    _, as_ms = auth(T0, "LOGIN_OK")
    as_ms["occurred_at"] = int(T0.timestamp() * 1000)
    for record in (late_naive, east, as_ms, {**as_ms, "occurred_at": None}):
        _same(apply_auth, events_reference.apply_auth, record, WalletState())
    engine = FeatureEngine()
    with pytest.raises(ValueError, match="naive datetime"):
        engine.process("auth", late_naive)
    assert engine.wallets[A] == WalletState(address=A)  # taken before the time was read
    assert datetime.fromtimestamp(0, UTC) < T0
