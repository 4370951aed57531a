"""A Decision's ``features`` dict made natively (``processors._native.feature_dicts``, through
``decide._feature_dicts``) is the one ``decide._features`` makes row by row: the same keys in
``FEATURE_NAMES`` order, the row's own value objects, for rows as tuples or lists; rows of
another kind (or length) are made row by row as before."""

from __future__ import annotations

import numpy as np
import pytest

from processors._native import feature_dicts
from processors.decide import _FEATURES, _feature_dicts, _features
from processors.features import FEATURE_NAMES

pytestmark = pytest.mark.unit

WIDTH = len(FEATURE_NAMES)


def _rows(n: int) -> list[tuple[float, ...]]:
    rng = np.random.default_rng(5)
    values = rng.normal(size=(n, WIDTH)).tolist()
    values[0][3] = float("nan")
    values[1][:4] = [-0.0, float("inf"), -1.0, 1e308]
    return [tuple(row) for row in values]


def _same(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert type(a) is dict and list(a) == list(b) == list(FEATURE_NAMES)
        assert all(x is y for x, y in zip(a.values(), b.values(), strict=True))  # same objects


@pytest.mark.parametrize("kind", [tuple, list])
def test_native_dicts_are_the_row_by_row_ones(kind) -> None:
    rows = [kind(row) for row in _rows(40)]
    _same(feature_dicts(_FEATURES, FEATURE_NAMES, rows), [_features(r) for r in rows])
    _same(_feature_dicts(rows), [_features(r) for r in rows])
    _same(_feature_dicts(tuple(rows)), [_features(r) for r in rows])  # any sequence of rows


def test_each_dict_is_its_own_and_the_template_unchanged() -> None:
    rows = _rows(3)
    made = _feature_dicts(rows)
    made[0]["velocity_1h"] = 99.0
    assert made[1]["velocity_1h"] == rows[1][FEATURE_NAMES.index("velocity_1h")]
    assert _FEATURES == dict.fromkeys(FEATURE_NAMES, 0.0)
    assert _feature_dicts([]) == []


def test_mixed_tuples_and_lists() -> None:
    rows = _rows(4)
    mixed = [rows[0], list(rows[1]), rows[2], list(rows[3])]
    _same(_feature_dicts(mixed), [_features(r) for r in mixed])


def test_other_rows_are_made_row_by_row() -> None:
    rows = np.asarray(_rows(3))  # numpy rows: their values are numpy floats, as before
    want = [_features(r) for r in rows]
    got = _feature_dicts(list(rows))
    assert [list(d) for d in got] == [list(d) for d in want]
    assert all(type(v) is np.float64 for d in got for v in d.values())
    assert [repr(list(d.values())) for d in got] == [repr(list(d.values())) for d in want]


def test_native_refuses_other_rows_and_lengths() -> None:
    with pytest.raises(ValueError):
        feature_dicts(_FEATURES, FEATURE_NAMES, [np.zeros(WIDTH)])
    with pytest.raises(ValueError):
        feature_dicts(_FEATURES, FEATURE_NAMES, [(0.0,) * (WIDTH - 1)])
    with pytest.raises(ValueError):
        feature_dicts(_FEATURES, FEATURE_NAMES, [(0.0,) * WIDTH, [0.0] * (WIDTH + 1)])


def test_values_stored_in_place_are_found_by_key_and_other_values_as_before() -> None:
    """Values go straight into the copy's entries (``CopiedEntries``): each key still finds
    its value, the dict grows and compares as any other; ints, None and containers too (a
    list makes the dict tracked by the cycle collector, as ``PyDict_SetItem`` does)."""
    import gc

    rows = _rows(3)
    odd = list(rows[2])
    odd[:4] = [1, None, [1.0], "x"]
    rows[2] = tuple(odd)
    got, want = _feature_dicts(rows), [_features(r) for r in rows]
    _same(got, want)
    for d, row in zip(got, rows, strict=True):
        assert all(d[name] is value for name, value in zip(FEATURE_NAMES, row, strict=True))
    assert [gc.is_tracked(d) for d in got] == [gc.is_tracked(d) for d in want] == [
        False, False, True]
    got[0]["extra"] = 1.0
    del got[0][FEATURE_NAMES[0]]
    assert list(got[0]) == [*FEATURE_NAMES[1:], "extra"] and got[0] != want[0]
    assert got[1] == want[1] and hash(frozenset(got[1].items())) == hash(frozenset(want[1].items()))


def test_a_template_with_a_deleted_key_still_gives_the_same_dicts() -> None:
    """A template whose table holds a deleted entry (its entries no longer the keys in order)
    is filled key by key as before."""
    template = dict.fromkeys(("gone", *FEATURE_NAMES), 0.0)
    del template["gone"]
    rows = _rows(2)
    _same(feature_dicts(template, FEATURE_NAMES, rows), [_features(r) for r in rows])
