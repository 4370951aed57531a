"""A batch's policy made natively (``processors._native.policy_columns``, through
``decide._policy``) gives each row the verdict code and final score ``policy.decide_columns``
gives it (and so ``policy.decide``), bit for bit: scores over 1, negative, NaN, -0.0 and
infinite, every threshold view, hard blocks; what it cannot read goes the Python way."""

from __future__ import annotations

import numpy as np
import pytest

from processors._native import policy_columns
from processors.decide import _CODE, _policy, _thresholds
from processors.policy import RULE_WEIGHT, Thresholds, decide, decide_columns
from processors.rules import RuleSet

pytestmark = pytest.mark.unit

VIEWS = [(0.85, 0.65, 0.4, 1.0), (0.9, 0.5, 0.2, 0.7), (0.5, 0.5, 0.5, 0.0), (1, 0, 0, 1)]
SPECIALS = [np.nan, -0.0, 0.0, 1.0, -1e-300, 1.0000000000000002, np.inf, -np.inf, 2.5, -3.0,
            0.85, 0.65, 0.4, 0.7, 0.2, 5e-324]  # fmt: skip


def _columns(n: int, seed: int) -> tuple[list[float], list[float], list[bool], list[int]]:
    rng = np.random.default_rng(seed)
    scores, rules = rng.random(n), rng.random(n)
    for column in (scores, rules):
        pick = rng.random(n) < 0.3
        column[pick] = rng.choice(SPECIALS, size=int(pick.sum()))
    return (scores.tolist(), rules.tolist(), (rng.random(n) < 0.05).tolist(),
            rng.integers(0, len(VIEWS), size=n).tolist())  # fmt: skip


@pytest.mark.parametrize("n", [0, 1, 7, 500, 5000])
def test_native_policy_is_decide_columns(n):
    scores, rules, hard, index = _columns(n, seed=n)
    codes, finals = policy_columns(scores, rules, hard, VIEWS, index, RULE_WEIGHT)
    table = np.asarray(VIEWS, dtype=np.float64)[index].reshape(n, 4)
    want_codes, want_finals = decide_columns(np.asarray(scores), np.asarray(rules),
                                             np.asarray(hard, dtype=bool), table)  # fmt: skip
    assert codes == want_codes.tolist()
    assert np.asarray(finals, dtype=np.float64).tobytes() == want_finals.tobytes()
    assert all(type(c) is int for c in codes) and all(type(f) is float for f in finals)
    for i in range(n):  # and the scalar policy, row by row
        verdict, final = decide(scores[i], rules[i], hard[i], Thresholds(*VIEWS[index[i]]))
        assert (_CODE[verdict], np.float64(final).tobytes()) == (
            codes[i],
            np.float64(finals[i]).tobytes(),
        )


def test_policy_of_a_batch_through_decide():
    """``decide._policy`` with an organizer view of the rules file: what ``decide_columns``
    gives, natively and the Python way for values the native side does not read (ints as
    the hard flags)."""
    purchases = [{"organizer_id": f"org_{i % 3}"} for i in range(40)]
    thresholds = _thresholds(purchases, RuleSet.default())
    scores, rules, hard, _ = _columns(40, seed=3)
    want = decide_columns(np.asarray(scores), np.asarray(rules), np.asarray(hard),
                          thresholds.columns())  # fmt: skip
    assert _policy(scores, rules, hard, thresholds) == (want[0].tolist(), want[1].tolist())
    odd = [int(h) for h in hard]
    assert _policy(scores, rules, odd, thresholds) == (want[0].tolist(), want[1].tolist())


def test_what_it_cannot_read_is_refused():
    scores, rules, hard, index = _columns(5, seed=1)
    with pytest.raises(ValueError, match="lengths"):
        policy_columns(scores, rules[:4], hard, VIEWS, index, RULE_WEIGHT)
    with pytest.raises(ValueError, match="index"):
        policy_columns(scores, rules, hard, VIEWS, [*index[:4], len(VIEWS)], RULE_WEIGHT)
    with pytest.raises(TypeError):
        policy_columns(scores, rules, [int(h) for h in hard], VIEWS, index, RULE_WEIGHT)
    with pytest.raises(TypeError):
        policy_columns([None, *scores[1:]], rules, hard, VIEWS, index, RULE_WEIGHT)
