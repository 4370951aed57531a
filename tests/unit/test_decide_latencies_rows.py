"""Two pieces of ``decide_batch`` made natively: each Decision's ``latency_ms``
(``processors._native.arrival_latencies``) is ``float(max(0, decided_ms -
(to_ms(p.get("ingested_at") or p["occurred_at"]) or 0)))`` of each purchase, whatever its
times (UTC or another zone, a subclass, int ms, before the epoch), or raises what that raises;
feature rows become the float64 matrix struct packs of them (``rows_matrix``, through
``as_matrix``), or are refused and packed as before."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from processors._native import arrival_latencies, rows_matrix
from processors.decide import _EPOCH, as_matrix
from processors.features import FEATURE_NAMES
from processors.timeutil import to_ms

pytestmark = pytest.mark.unit

DECIDED_AT = datetime(2025, 4, 1, 12, 0, 0, 999_999, tzinfo=UTC)
DECIDED_MS = to_ms(DECIDED_AT) or 0
NAIVE = DECIDED_AT.replace(tzinfo=None)  # refused by to_ms
PLUS_2 = timezone(timedelta(hours=2))


class Stamp(datetime):
    """A datetime subclass: converted by ``to_ms`` itself."""


def _python(purchases: list[dict], decided_ms: int) -> list[float]:
    """``decide._decisions``' own expression before it was made natively."""
    return [float(max(0, decided_ms - (to_ms(p.get("ingested_at") or p["occurred_at"]) or 0)))
            for p in purchases]  # fmt: skip


def _native(purchases: list[dict], decided_ms: int = DECIDED_MS) -> list[float]:
    return arrival_latencies(purchases, decided_ms, datetime, UTC, _EPOCH, to_ms)


ARRIVALS = [
    datetime(2025, 4, 1, 11, 59, 58, 123_456, tzinfo=UTC),
    datetime(2025, 4, 1, 11, 59, 58, 123_999, tzinfo=UTC),  # microseconds floored
    datetime(2025, 4, 1, 13, 0, tzinfo=UTC),  # after the decision: 0
    datetime(2025, 4, 1, 13, 59, 0, 1, tzinfo=PLUS_2),  # another zone: to_ms
    Stamp(2025, 4, 1, 11, 0, tzinfo=UTC),  # a subclass: to_ms
    datetime(1969, 12, 31, 23, 59, 59, 999_500, tzinfo=UTC),  # before the epoch
    datetime(1, 1, 1, tzinfo=UTC),
    1_743_508_000_000,  # int ms, taken as it is
    -5,
    None,  # to_ms(None) or 0: 0
]


def test_latencies_are_pythons_for_every_kind_of_time():
    purchases = []
    for i, arrived in enumerate(ARRIVALS):
        purchases.append({"occurred_at": arrived})  # no ingested_at
        purchases.append({"occurred_at": ARRIVALS[0], "ingested_at": arrived})  # None: occurred
        purchases.append({"occurred_at": arrived, "ingested_at": 0})  # falsy: occurred_at
        purchases.append({"occurred_at": ARRIVALS[i - 1], "ingested_at": arrived, "x": 1})
    got = _native(purchases)
    assert got == _python(purchases, DECIDED_MS)
    assert all(type(v) is float for v in got)
    assert _native(purchases, 0) == _python(purchases, 0)
    assert _native([]) == []


@pytest.mark.parametrize(
    ("purchase", "error"),
    [
        ({"ingested_at": None}, KeyError),  # no occurred_at
        ({"occurred_at": NAIVE}, ValueError),  # naive
        ({"occurred_at": DECIDED_AT, "ingested_at": NAIVE}, ValueError),
        ({"occurred_at": True}, TypeError),  # to_ms refuses a bool
        ({"occurred_at": "2025-04-01"}, TypeError),
    ],
)
def test_times_to_ms_refuses_raise_what_it_raises(purchase, error):
    with pytest.raises(error):
        _python([purchase], DECIDED_MS)
    with pytest.raises(error):
        _native([{"occurred_at": DECIDED_AT}, purchase])


def test_what_it_cannot_make_is_refused():
    """Not a plain dict, or a latency past 64 bits of ms (Python's ints take it: the records
    are then made row by row, ``test_decide_decision_dicts.py``)."""
    from collections import UserDict

    with pytest.raises(ValueError, match="dicts"):
        _native([{"occurred_at": DECIDED_AT}, UserDict(occurred_at=DECIDED_AT)])
    with pytest.raises(OverflowError):
        _native([{"occurred_at": 2**63}])
    with pytest.raises(OverflowError):
        _native([{"occurred_at": -(2**63) + 1}])


WIDTH = len(FEATURE_NAMES)


def _packed(rows) -> bytes:
    return b"".join(struct.pack(f"{WIDTH}d", *row) for row in rows)


def test_rows_become_the_doubles_struct_packs():
    """Tuples and lists, floats (NaN payloads, -0.0, infinities, subnormals), ints past
    2**53, bools, numpy scalars and objects with ``__float__`` or ``__index__``."""

    class Half:
        def __float__(self) -> float:
            return 0.5

    class Three:
        def __index__(self) -> int:
            return 3

    nan_payload = np.frombuffer(np.uint64(0x7FF8_0000_0000_0ABC).tobytes(), np.float64)[0]
    specials = [float(nan_payload), -0.0, float("inf"), -float("inf"), 5e-324, 2**60 + 1,
                True, np.float32(0.1), np.float64(-2.5), 7, Half(), Three(), -1.0]  # fmt: skip
    rows: list = [tuple(specials[(i + j) % len(specials)] for j in range(WIDTH))
                  for i in range(13)]  # fmt: skip
    rows += [list(row) for row in rows[:5]]
    X = np.empty((len(rows), WIDTH))
    rows_matrix(rows, X)
    assert X.tobytes() == _packed(rows)
    got, same = as_matrix(rows)
    assert same is rows and got.tobytes() == _packed(rows) and got.flags.writeable


def test_rows_it_refuses_are_packed_as_before():
    """A value PyFloat_AsDouble refuses (None, a text), a row that is neither a tuple nor a
    list, or of another width: refused, and ``as_matrix`` converts them as it did (numpy's
    doubles, or its ValueError)."""
    row = tuple(float(j) for j in range(WIDTH))
    for odd in ([(None, *row[1:])], [("1.5", *row[1:])], [np.asarray(row)], [row[:-1]],
                [(*row, 1.0)], [row, "x" * WIDTH]):  # fmt: skip
        with pytest.raises(ValueError, match="rows must be"):
            rows_matrix(odd, np.empty((len(odd), WIDTH)))
    X, _ = as_matrix([row, (None, *row[1:]), ("1.5", *row[1:])])
    assert np.isnan(X[1, 0]) and X[2, 0] == 1.5 and X[0].tolist() == list(row)
    X, _ = as_matrix([np.asarray(row)])
    assert X.tolist() == [list(row)]
    with pytest.raises(ValueError, match="hold"):
        as_matrix([row, row[:-1]])
    with pytest.raises(ValueError, match="out must be"):
        rows_matrix([row], np.empty((2, WIDTH)))
    with pytest.raises(ValueError, match="out must be"):
        rows_matrix([row], np.empty((1, WIDTH))[:, ::-1])
