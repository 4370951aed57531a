"""Crowd states: purchases of many wallets under one aggregate key, queried AS OF a time.

Same contract as ``processors.entity_state`` (which the live replica follows): states keep
time-stamped rows, are applied once per purchase id in any order, and answer questions about
rows strictly BEFORE the asking purchase's event time, so a replica that has read ahead gives
the same answers as an in-order replay. Rows live 70 minutes (the longest recent window is 1 h)
and are capped; the normal pace is kept as purchases per hour over 25 hours.

    store = CrowdStore()
    store.apply(purchase)                  # every purchase, once (redeliveries ignored)
    states = store.states(purchase)        # {key: CrowdState | None} for crowd_keys(purchase)
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import Any

from processors.ring import drop_rows_until, insert_row
from processors.timeutil import DAY_MS, HOUR_MS, MINUTE_MS, query_floor, to_ms

ROWS_RETENTION_MS = 70 * MINUTE_MS
ROWS_CAP = 2048  # per key; the wallet counts saturate long before a hot key reaches it
HOURS_KEPT = 26
PRUNE_EVERY_MS = 5 * MINUTE_MS
SEEN_RETENTION_MS = 2 * HOUR_MS
IDLE_MS = DAY_MS + 2 * HOUR_MS  # a key idle this long holds nothing a query needs

Row = tuple[int, str, str, int]  # (ts, wallet, card or "", 1 if a small amount else 0)


@dataclass(slots=True)
class CrowdState:
    rows: list[Row] = field(default_factory=list)
    hours: dict[int, int] = field(default_factory=dict)
    watermark_ms: int = 0
    pruned_ms: int = 0
    # (hour, hours, hourly_before(hour, hours)) of the last query: a hot key is asked the same
    # question by every purchase of an hour; forgotten when an hour it counted changes.
    _pace: tuple[int, int, int] | None = field(default=None, compare=False, repr=False)
    # The earliest hour in ``hours`` (None: not known yet), so a prune sees at once whether
    # an hour went stale.
    _first_hour: int | None = field(default=None, compare=False, repr=False)

    def observe(self, row: Row, floor_ms: int | None = None) -> None:
        ts = row[0]
        insert_row(self.rows, row, ROWS_CAP)
        hour = ts // HOUR_MS
        hours = self.hours
        if hour in hours:
            hours[hour] += 1
        else:
            hours[hour] = 1
            first = self._first_hour
            if first is not None and hour < first:
                self._first_hour = hour
        pace = self._pace
        if pace is not None and hour < pace[0]:
            self._pace = None
        if ts > self.watermark_ms:
            self.watermark_ms = ts
        floor = query_floor(floor_ms, self.watermark_ms)
        if floor - self.pruned_ms >= PRUNE_EVERY_MS:
            self._prune(floor)

    def _prune(self, floor: int) -> None:
        """Drop rows and hours no query as of ``floor`` or later reads."""
        rows = self.rows
        if rows and rows[0][0] <= floor - ROWS_RETENTION_MS:
            drop_rows_until(rows, floor - ROWS_RETENTION_MS)
        oldest, first = floor // HOUR_MS - HOURS_KEPT, self._first_hour
        if first is None or first < oldest:
            hours = self.hours
            if min(hours) < oldest:
                for h in [h for h in hours if h < oldest]:
                    del hours[h]
                self._pace = None
            self._first_hour = min(hours) if hours else None
        self.pruned_ms = floor

    def between(self, lo_excl: int, hi_excl: int) -> list[Row]:
        i = bisect.bisect_right(self.rows, lo_excl, key=_ts)
        j = bisect.bisect_left(self.rows, hi_excl, key=_ts)
        return self.rows[i:j]

    def count_between(self, lo_excl: int, hi_excl: int) -> int:
        """``len(between(lo_excl, hi_excl))`` without copying the rows."""
        return max(0, bisect.bisect_left(self.rows, hi_excl, key=_ts)
                   - bisect.bisect_right(self.rows, lo_excl, key=_ts))

    def hourly_before(self, hour: int, hours: int) -> int:
        """Purchases in the ``hours`` whole hours before ``hour``."""
        pace = self._pace
        if pace is not None and pace[0] == hour and pace[1] == hours:
            return pace[2]
        counts = self.hours
        if len(counts) < hours:  # a quiet key: fewer hours kept than asked about
            first = hour - hours
            count = sum([n for h, n in counts.items() if first <= h < hour])
        else:
            count = sum(map(counts.get, range(hour - hours, hour), repeat(0, hours)))
        self._pace = (hour, hours, count)
        return count

    def to_dict(self) -> dict[str, Any]:
        return {"r": [list(r) for r in self.rows], "h": [[k, v] for k, v in self.hours.items()],
                "wm": self.watermark_ms, "pruned": self.pruned_ms}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CrowdState:
        return cls([(r[0], r[1], r[2], r[3]) for r in d["r"]], {int(k): v for k, v in d["h"]},
                   d["wm"], d["pruned"])


_ts = itemgetter(0)


class CrowdStore:
    """Every crowd state, for ``keys_of(purchase)`` and ``row_of(purchase)`` (from
    ``processors.crowd``), applied once per purchase id."""

    def __init__(self, keys_of: Callable[[Mapping], list[str]],
                 row_of: Callable[[Mapping, int], Row]) -> None:
        self.states_by_key: dict[str, CrowdState] = {}
        self.keys_of, self.row_of = keys_of, row_of
        self.seen: dict[str, int] = {}
        self.watermark_ms = 0
        self.floor_ms: int | None = None
        self._swept_ms = 0

    def __len__(self) -> int:
        return len(self.states_by_key)

    def apply(self, purchase: Mapping, keys: list[str] | None = None) -> None:
        """``keys``: ``keys_of(purchase)`` when the caller has them already."""
        ts = to_ms(purchase["occurred_at"])
        assert ts is not None
        if purchase["purchase_id"] in self.seen:
            return
        row = self.row_of(purchase, ts)  # may raise (no rate): before anything changes
        self.apply_row(purchase["purchase_id"], row,
                       self.keys_of(purchase) if keys is None else keys)

    def apply_row(self, purchase_id: str, row: Row, keys: list[str]) -> None:
        """``apply`` for a purchase whose row (``row_of``) and keys are known already."""
        if purchase_id in self.seen:
            return
        ts = row[0]
        self.seen[purchase_id] = ts
        if ts > self.watermark_ms:
            self.watermark_ms = ts
        floor = self.floor()
        states, fresh_floor = self.states_by_key, (floor if floor < ts else ts)
        # A new key's first row, kept and pruned as ``observe`` would do it (the usual case).
        fresh = ts > fresh_floor - ROWS_RETENTION_MS and fresh_floor >= PRUNE_EVERY_MS
        for key in keys:
            state = states.pop(key, None)
            if state is not None:
                state.observe(row, floor)
            elif fresh:
                state = CrowdState([row], {ts // HOUR_MS: 1}, ts, fresh_floor, None, ts // HOUR_MS)
            else:
                state = CrowdState()
                state.observe(row, floor)
            states[key] = state  # re-inserted: dict order is order of last use
        if floor - self._swept_ms >= HOUR_MS:
            self.sweep()

    def floor(self) -> int:
        return query_floor(self.floor_ms, self.watermark_ms)

    def advance_floor(self, ts_ms: int) -> None:
        self.floor_ms = ts_ms if self.floor_ms is None else max(self.floor_ms, ts_ms)

    def states(self, purchase: Mapping, keys: list[str] | None = None
               ) -> dict[str, CrowdState | None]:
        get = self.states_by_key.get
        return {key: get(key) for key in (self.keys_of(purchase) if keys is None else keys)}

    def sweep(self) -> None:
        floor = self.floor()
        idle = []
        for key, state in self.states_by_key.items():
            if state.watermark_ms > floor - IDLE_MS:
                break
            idle.append(key)
        for key in idle:
            del self.states_by_key[key]
        stale = []
        for pid, ts in self.seen.items():
            if ts > floor - SEEN_RETENTION_MS:
                break
            stale.append(pid)
        for pid in stale:
            del self.seen[pid]
        self._swept_ms = floor
