"""Small helpers over time-sorted rings and timestamp-valued dicts (the bounded state)."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

_ts = itemgetter(0)  # a row's timestamp (its first field)


def insert_row(ring: list, row: Sequence[Any], cap: int) -> None:
    """Insert a row whose first field is its ts, keeping ``ring`` sorted; drop the oldest over ``cap``."""
    if not ring or row[0] >= ring[-1][0]:
        ring.append(row)
    else:
        bisect.insort_right(ring, row, key=_ts)
    if len(ring) > cap:
        del ring[: len(ring) - cap]


def insert_ts(ring: list[int], ts: int, cap: int) -> None:
    """Insert a bare timestamp, keeping ``ring`` sorted; drop the oldest over ``cap``."""
    bisect.insort_right(ring, ts)
    if len(ring) > cap:
        del ring[: len(ring) - cap]


def rows_between(ring: list, lo_excl: int, hi_incl: int) -> list:
    """Rows with ``lo_excl < ts <= hi_incl`` (rows are sorted by ts). The features' windows
    are taken natively (``processors/native/src/wallet.rs``, the same bisection); this one
    serves the frozen references in ``tests/support``."""
    i = bisect.bisect_right(ring, lo_excl, key=_ts)
    j = bisect.bisect_right(ring, hi_incl, key=_ts)
    return ring[i:j]


def count_ts_between(ring: list[int], lo_excl: int, hi_incl: int) -> int:
    """How many bare timestamps lie in ``(lo_excl, hi_incl]``."""
    return bisect.bisect_right(ring, hi_incl) - bisect.bisect_right(ring, lo_excl)


def drop_rows_until(ring: list, cutoff: int) -> None:
    """Drop rows with ``ts <= cutoff``."""
    if ring and ring[0][0] <= cutoff:  # most calls find nothing to drop
        del ring[: bisect.bisect_right(ring, cutoff, key=_ts)]


def drop_ts_until(ring: list[int], cutoff: int) -> None:
    del ring[: bisect.bisect_right(ring, cutoff)]


def cap_dict(d: dict, cap: int, ts_of: Callable[[Any], int] = int) -> None:
    """Over ``cap``, drop the oldest entries down to three quarters of ``cap`` (amortised)."""
    if len(d) <= cap:
        return
    keep = cap - cap // 4
    for k in sorted(d, key=lambda k: (ts_of(d[k]), k))[: len(d) - keep]:
        del d[k]
