"""A batch's Decision reasons made natively (``processors._native.reasons_batch``, through
``decide._reasons``) are ``explain.reasons(results, limit=10)`` of each row: the same order
(hard first, highest score, then rule id, stable), the same dicts holding the results' own
objects, ``[]`` for a row without results; results the native call refuses (NaN or non-float
scores, non-bool hards, rule ids that are not plain texts) are ranked row by row as before."""

from __future__ import annotations

import random

import numpy as np
import pytest

from processors._native import reasons_batch
from processors.decide import _reasons
from processors.explain import reasons
from processors.rules.base import RuleResult

pytestmark = pytest.mark.unit

IDS = ["a", "b", "velocity_1h", "z", "é", "ﬀ", "\U0001f600", "A", "a_b", "ab", ""]
SCORES = [0.0, -0.0, 0.5, 1.0, 0.25, float("inf"), 1e-300, 0.5000000000000001]


def _before(rows: list) -> list:
    return [reasons(r, limit=10) if r else [] for r in rows]


def _same(got: list, want: list) -> None:
    assert got == want
    for a, b in zip(got, want, strict=True):
        for x, y in zip(a, b, strict=True):
            assert list(x) == ["code", "category", "score", "detail"] == list(y)
            assert all(u is v for u, v in zip(x.values(), y.values(), strict=True))


def _random_rows(seed: int, n: int) -> list[list[RuleResult]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        ids = rng.sample(IDS, rng.randint(0, len(IDS)))
        rows.append([RuleResult(i, rng.choice(("identity", "network")), rng.choice(SCORES),
                                f"reason {i}", rng.random() < 0.2) for i in ids])  # fmt: skip
    return rows


def test_native_reasons_are_explain_reasons() -> None:
    rows = _random_rows(3, 3_000)
    assert any(len(r) > 10 for r in rows) and any(not r for r in rows)
    _same(reasons_batch(rows, 10), _before(rows))
    _same(_reasons(rows), _before(rows))
    _same(reasons_batch(rows, 2), [reasons(r, limit=2) if r else [] for r in rows])
    assert reasons_batch([], 10) == []


def test_ties_keep_the_results_order() -> None:
    # the same rule id twice (never from the engine): the three stable sorts keep them in order
    row = [
        RuleResult("x", "c1", 0.5, "first", False),
        RuleResult("x", "c2", 0.5, "second", False),
        RuleResult("w", "c3", -0.0, "zero", False),
        RuleResult("v", "c4", 0.0, "zero", False),
    ]
    _same(reasons_batch([row], 10), _before([row]))
    plain = [tuple(r) for r in row]  # a plain 5-tuple reads as a result too
    _same(reasons_batch([plain], 10), _before([plain]))


@pytest.mark.parametrize(
    "odd",
    [
        RuleResult("nan", "c", float("nan"), "r", False),
        RuleResult("np", "c", np.float64(0.75), "r", False),
        RuleResult("int", "c", 1, "r", False),
        RuleResult("hard", "c", 0.5, "r", 1),  # type: ignore[arg-type]
        RuleResult("\ud800", "c", 0.5, "r", False),
    ],
)
def test_odd_results_are_ranked_as_before(odd) -> None:
    rows = _random_rows(5, 40) + [[RuleResult("m", "c", 0.5, "r", True), odd]]
    with pytest.raises(ValueError):
        reasons_batch(rows, 10)
    got, want = _reasons(rows), _before(rows)
    assert repr(got) == repr(want)  # (NaN is not equal to itself)


def test_results_that_are_not_lists_or_results() -> None:
    rows = _random_rows(6, 5)
    with pytest.raises(ValueError):
        reasons_batch([tuple(rows[0]), *rows[1:]], 10)
    _same(_reasons([tuple(rows[0]), *rows[1:]]), _before(rows))
    short = [("only", "four", 0.5, "fields")]
    with pytest.raises(ValueError):
        reasons_batch([short], 10)
    with pytest.raises(ValueError, match="not enough values to unpack"):
        _reasons([short])  # type: ignore[list-item]  # as explain.reasons raises it
