"""A batch's Decision records made natively (``processors._native.decision_dicts``, through
``decide._decisions``) are the ones ``decide._decisions_by_row`` makes: the same keys in the
same order, the same values (the purchases' own objects), a new ``contributions`` dict each;
purchases it refuses (not plain dicts, a field missing, a non-text id) and rows that raise
(a naive time) are made row by row, which gives the same records or raises the same error."""

from __future__ import annotations

import gc
from collections import UserDict
from datetime import UTC, datetime

import pytest

from processors._native import decision_dicts
from processors.decide import _DECISION, _Batch, _decisions, _decisions_by_row
from processors.features import FEATURE_NAMES
from processors.rules.base import RuleResult

pytestmark = pytest.mark.unit

DECIDED_AT = datetime(2025, 4, 1, 12, tzinfo=UTC)
NAIVE = DECIDED_AT.replace(tzinfo=None)  # refused by to_ms


def _purchase(i: int) -> dict:
    purchase = {"purchase_id": f"pur_{i}", "wallet": f"0x{i:040x}", "organizer_id": f"org_{i % 3}",
                "occurred_at": datetime(2025, 4, 1, 11, 59, i % 60, tzinfo=UTC),
                "ingested_at": None}  # fmt: skip
    if i % 4 == 1:
        purchase["ingested_at"] = datetime(2025, 4, 1, 12, 0, 1, tzinfo=UTC)  # after: latency 0
    if i % 5 == 2:
        del purchase["organizer_id"]
    if i % 7 == 3:
        del purchase["ingested_at"]
    return purchase


def _inputs(n: int) -> tuple[list, list, _Batch]:
    purchases = [_purchase(i) for i in range(n)]
    rows = [tuple(float(i * 100 + j) for j in range(len(FEATURE_NAMES))) for i in range(n)]
    results = [[RuleResult("r1", "identity", 0.5, f"reason {i}", i % 9 == 0)] * (i % 3)
               for i in range(n)]  # fmt: skip
    batch = _Batch(["APPROVED", "BLOCKED", "REQUIRE_2FA"] * (n // 3) + ["APPROVED"] * (n % 3),
                   [i / n for i in range(n)], [i / (2 * n) for i in range(n)],
                   [0.25] * n, results, "model-1", "rules-1", DECIDED_AT)  # fmt: skip
    return purchases, rows, batch


def _same(got: list, want: list) -> None:
    assert repr(got) == repr(want)  # values and key order
    for a, b in zip(got, want, strict=True):
        assert list(a) == list(b) == list(_DECISION)
        assert all(a[key] is a_value for key, a_value in a.items())  # each found by its key
        assert gc.is_tracked(a) and gc.is_tracked(b)  # (they hold dicts and lists)
        for key in ("purchase_id", "wallet", "organizer_id", "occurred_at", "decided_at"):
            assert a[key] is b[key], key
        assert a["contributions"] == {} and a["contributions"] is not b["contributions"]


def test_native_records_are_the_row_by_row_ones() -> None:
    purchases, rows, batch = _inputs(300)
    made = _decisions(purchases, rows, batch)
    _same(made, _decisions_by_row(purchases, rows, batch))
    assert len({id(d["contributions"]) for d in made}) == len(made)  # one dict each
    one = _Batch(batch.verdicts[:1], batch.finals[:1], batch.scores[:1], batch.rule_scores[:1],
                 batch.results[:1], "m", "r", DECIDED_AT)  # fmt: skip
    _same(_decisions(purchases[:1], rows[:1], one), _decisions_by_row(purchases[:1], rows[:1], one))


@pytest.mark.parametrize(
    "spoil",
    [
        lambda ps: ps.__setitem__(4, UserDict(ps[4])),  # not a plain dict
        lambda ps: ps[5].__setitem__("purchase_id", 12345),  # an id that is not a text
        lambda ps: ps[6].__setitem__("wallet", None),  # (taken as it is, natively too)
    ],
)
def test_refused_purchases_are_made_row_by_row(spoil) -> None:
    purchases, rows, batch = _inputs(30)
    spoil(purchases)
    _same(_decisions(purchases, rows, batch), _decisions_by_row(purchases, rows, batch))


def _raised(call) -> tuple[type, str]:
    with pytest.raises(Exception) as caught:
        call()
    return caught.type, str(caught.value)


@pytest.mark.parametrize(
    "spoil",
    [
        lambda ps: ps[3].pop("purchase_id"),
        lambda ps: ps[3].pop("wallet"),
        lambda ps: ps[3].pop("occurred_at"),
        # a missing id on row 2 and a naive time on row 9: row 2's KeyError, as before
        lambda ps: (
            ps[2].pop("purchase_id"),
            ps[9].__setitem__("occurred_at", NAIVE),
        ),  # fmt: skip
        lambda ps: ps[9].__setitem__("ingested_at", NAIVE),
        lambda ps: ps.pop(),  # fewer purchases than rows
    ],
)
def test_rows_that_raise_raise_as_before(spoil) -> None:
    purchases, rows, batch = _inputs(12)
    spoil(purchases)
    want = _raised(lambda: _decisions_by_row(purchases, rows, batch))
    assert _raised(lambda: _decisions(purchases, rows, batch)) == want


def test_native_refuses_what_it_cannot_make() -> None:
    purchases, rows, batch = _inputs(3)
    columns: list[list] = [list(batch.verdicts), batch.finals, batch.scores, batch.rule_scores,
               [[], [], []], [{}, {}, {}], [0.0, 0.0, 0.0]]  # fmt: skip
    assert len(decision_dicts(_DECISION, purchases, columns, "m", "r", DECIDED_AT)) == 3
    for bad in (columns[:6], [*columns[:6], [0.0]]):
        with pytest.raises(ValueError):
            decision_dicts(_DECISION, purchases, bad, "m", "r", DECIDED_AT)
    with pytest.raises(ValueError):
        decision_dicts(dict.fromkeys("abc"), purchases, columns, "m", "r", DECIDED_AT)
    del purchases[1]["occurred_at"]
    with pytest.raises(ValueError):
        decision_dicts(_DECISION, purchases, [c[:3] for c in columns], "m", "r", DECIDED_AT)
