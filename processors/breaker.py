"""The rule blast-radius breaker (pure): a rule that hits too many purchases is shadowed.

Each rule may set a ceiling in the rules file::

    [rules.some_rule]
    ceiling = { share = 0.02, window = "5m", of = "blocked", min_purchases = 100 }

``of = "blocked"`` counts the purchases the rule BLOCKED: a hard rule that fired on a
BLOCKED purchase, or a rule without whose evidence the purchase would not have been BLOCKED
(``blocked_by``); ``of = "fired"`` every purchase it fired on. ``RuleBreaker.observe(now_ms, outcomes)`` keeps, per rule, a
sliding window of those counts against all purchases decided; when a rule's share exceeds
its ceiling (with at least ``min_purchases`` in the window) it returns a ``Trip``. Every rule
has the default ceiling unless its file says otherwise.

A shadowed rule still runs and its hits are recorded (its reason marked ``[shadow]``), but
``shadow_rules`` takes it out of the rule score and the hard block, so it no longer changes
any verdict. Its counts are dropped while it is shadowed: re-enabled, it starts afresh.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from operator import attrgetter
from typing import Any

import numpy as np

SHADOW_PREFIX = "[shadow] "
OF = ("blocked", "fired")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}


@dataclass(frozen=True, slots=True)
class Ceiling:
    share: float = 0.02
    window_ms: int = 300_000
    of: str = "blocked"
    min_purchases: int = 100


DEFAULT_CEILING = Ceiling()


@dataclass(frozen=True, slots=True)
class Trip:
    rule_id: str
    share: float
    hits: int
    purchases: int
    ceiling: Ceiling


def parse_ceiling(value: Any, where: str, fail) -> Ceiling:
    """A ``ceiling`` table of the rules file (``fail(message)`` builds the error to raise)."""
    if not isinstance(value, Mapping):
        raise fail(f"{where}: expected a table, got {type(value).__name__}")
    unknown = sorted(set(value) - {"share", "window", "of", "min_purchases"})
    if unknown:
        raise fail(f"{where}: unknown key {unknown[0]!r}")
    share = value.get("share", DEFAULT_CEILING.share)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
        raise fail(f"{where}.share: expected a number in (0, 1], got {share!r}")
    window = _DURATION.match(str(value.get("window", "5m")))
    if window is None:
        raise fail(f"{where}.window: expected a duration like \"5m\", got {value['window']!r}")
    of = value.get("of", DEFAULT_CEILING.of)
    if of not in OF:
        raise fail(f"{where}.of: expected one of {', '.join(OF)}, got {of!r}")
    least = value.get("min_purchases", DEFAULT_CEILING.min_purchases)
    if isinstance(least, bool) or not isinstance(least, int) or least < 1:
        raise fail(f"{where}.min_purchases: expected a positive integer, got {least!r}")
    window_ms = int(float(window[1]) * _UNIT_MS[window[2]])
    return Ceiling(float(share), window_ms, of, least)


class RuleBreaker:
    """Sliding-window hit shares per rule; ``observe`` returns the rules that trip.

    Each batch's counts are added to a running total per window length in use and taken out
    when the batch leaves that window, so a batch costs its own hits plus the batches that
    expire, whatever the number of batches in the windows (at 500 small batches a second, the
    former recount of every batch in the window for every rule took a fifth of the worker)."""

    def __init__(self, ceilings: Mapping[str, Ceiling] | None = None) -> None:
        self.batches: deque[tuple[int, int, dict[str, list[int]]]] = deque()
        self.windows: dict[int, _Window] = {}
        self.ceilings = dict(ceilings or {})

    @property
    def ceilings(self) -> dict[str, Ceiling]:
        return self._ceilings

    @ceilings.setter
    def ceilings(self, ceilings: Mapping[str, Ceiling]) -> None:
        self._ceilings = dict(ceilings)
        lengths = {c.window_ms for c in self._ceilings.values()} | {DEFAULT_CEILING.window_ms}
        self.windows = {w: self.windows.get(w) or _Window.over(w, self.batches)
                        for w in sorted(lengths)}

    def ceiling(self, rule_id: str) -> Ceiling:
        return self._ceilings.get(rule_id, DEFAULT_CEILING)

    def observe(self, now_ms: int, outcomes: Iterable[tuple[Sequence[str], Sequence[str]]],
                shadowed: Set[str] = frozenset()) -> list[Trip]:
        """``outcomes``: per purchase, (the enforced rules that fired, those that blocked it)."""
        purchases = 0
        hits: dict[str, list[int]] = {}  # rule id: [purchases it fired on, those it blocked]
        for fired, blocked_by in outcomes:
            purchases += 1
            for rule_id in fired:
                counts = hits.setdefault(rule_id, [0, 0])
                counts[0] += 1
                counts[1] += rule_id in blocked_by
        entry = (now_ms, purchases, hits)
        self.batches.append(entry)
        for window in self.windows.values():
            window.add(entry)
            window.expire(self.batches, now_ms)
        gone = min(w.start for w in self.windows.values())
        for _ in range(gone):
            self.batches.popleft()
        for window in self.windows.values():
            window.start -= gone
        return [trip for rule_id in self._seen() - set(shadowed)
                if (trip := self._check(rule_id)) is not None]

    def forget(self, rule_ids: Iterable[str]) -> None:
        """Drop the counts of ``rule_ids`` (shadowed: they start afresh when re-enabled)."""
        drop = set(rule_ids) & self._seen()
        if not drop:
            return
        for _, _, hits in self.batches:
            for rule_id in drop & hits.keys():
                del hits[rule_id]
        for window in self.windows.values():
            for rule_id in drop:
                window.hits.pop(rule_id, None)

    def _seen(self) -> set[str]:
        return set(self.windows[max(self.windows)].hits)

    def _check(self, rule_id: str) -> Trip | None:
        ceiling = self.ceiling(rule_id)
        window = self.windows[ceiling.window_ms]
        fired, blocked = window.hits.get(rule_id, (0, 0))
        count = blocked if ceiling.of == "blocked" else fired
        purchases = window.purchases
        if purchases < ceiling.min_purchases or count <= ceiling.share * purchases:
            return None
        return Trip(rule_id, count / purchases, count, purchases, ceiling)


@dataclass(slots=True)
class _Window:
    """Running totals over the batches of the last ``length_ms``: ``batches[start:]``."""

    length_ms: int
    start: int = 0
    purchases: int = 0
    hits: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def over(cls, length_ms: int, batches: deque) -> _Window:
        window = cls(length_ms)
        for entry in batches:
            window.add(entry)
        if batches:
            window.expire(batches, batches[-1][0])
        return window

    def add(self, entry: tuple[int, int, dict[str, list[int]]]) -> None:
        self.purchases += entry[1]
        for rule_id, (fired, blocked) in entry[2].items():
            counts = self.hits.setdefault(rule_id, [0, 0])
            counts[0] += fired
            counts[1] += blocked

    def expire(self, batches: deque, now_ms: int) -> None:
        while self.start < len(batches) and batches[self.start][0] <= now_ms - self.length_ms:
            _, purchases, hits = batches[self.start]
            self.purchases -= purchases
            for rule_id, (fired, blocked) in hits.items():
                counts = self.hits.get(rule_id)
                if counts is None:  # forgotten meanwhile
                    continue
                counts[0] -= fired
                counts[1] -= blocked
                if counts == [0, 0]:
                    del self.hits[rule_id]
            self.start += 1


def shadow_rules(evaluation, shadowed: Set[str], weight_of) -> Any:
    """A ``BatchEvaluation`` with the ``shadowed`` rules' hits kept (reason marked) but out
    of each row's rule score and hard block. ``weight_of(row, rule_id)`` gives the weight the
    row's organizer view uses."""
    results, scores, hard = [], evaluation.rule_score.copy(), evaluation.hard_block.copy()
    for i, row in enumerate(evaluation.results):
        if not any(r.rule_id in shadowed for r in row):
            results.append(row)
            continue
        kept = [r for r in row if r.rule_id not in shadowed]
        survive = float(np.prod([1.0 - weight_of(i, r.rule_id) * r.score for r in kept]))
        scores[i] = min(1.0, max(0.0, 1.0 - survive))
        hard[i] = any(r.hard for r in kept)
        results.append([r if r.rule_id not in shadowed else
                        r._replace(reason=SHADOW_PREFIX + r.reason, hard=False) for r in row])
    return replace(evaluation, results=results, rule_score=scores, hard_block=hard)


def blocked_by(results: Sequence, verdict: str, model_score: float, weight_of,
               block_threshold: float, combine) -> tuple[str, ...]:
    """The rules that BLOCKED a purchase: on a hard block, the hard rules that fired; on a
    score block, each rule without whose evidence the final score would not exceed the block
    threshold (``combine(model, rule)`` is the policy's)."""
    if verdict != "BLOCKED" or not results:
        return ()
    hard = tuple(r.rule_id for r in results if r.hard)
    if hard:
        return hard
    factors = {r.rule_id: 1.0 - weight_of(r.rule_id) * r.score for r in results}
    survive = float(np.prod(list(factors.values())))
    out = []
    for rule_id, factor in factors.items():
        without = 1.0 - (float(np.prod([f for k, f in factors.items() if k != rule_id]))
                         if factor <= 0 else survive / factor)
        if combine(model_score, without) <= block_threshold:
            out.append(rule_id)
    return tuple(out)


def rule_weights(ruleset, purchases: Sequence[Mapping[str, Any]]):
    """weight_of(row, rule id): the weight in the row's organizer view of ``ruleset``."""
    def weight_of(i: int, rule_id: str) -> float:
        return ruleset.for_organizer(purchases[i].get("organizer_id")).settings[rule_id].weight

    return weight_of


def rule_hits(evaluation, blocked: Sequence[bool], scores: Sequence[float], block_thresholds,
              shadowed: Set[str], weight_of) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Per row: (the enforced rules that fired, those that BLOCKED it), for the breaker. Rows
    without results (most) are ((), ()) and only BLOCKED rows are asked ``blocked_by`` (500
    simulated purchases, 1 blocked: 206 against 299 µs, when each row went through it)."""
    from processors.policy import combine

    results = evaluation.results
    if len(blocked) != len(results):
        raise ValueError(f"{len(blocked)} blocked flags for {len(results)} rows")
    if shadowed:
        results = [[r for r in row if r.rule_id not in shadowed] for row in results]
    out: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
        (tuple(map(_RULE_ID, row)), ()) if row else ((), ()) for row in results]
    for i in [i for i, is_blocked in enumerate(blocked) if is_blocked]:
        out[i] = (out[i][0], blocked_by(results[i], "BLOCKED", float(scores[i]),
                                        lambda rule_id, i=i: weight_of(i, rule_id),
                                        block_thresholds[i], combine))  # fmt: skip
    return out


_RULE_ID = attrgetter("rule_id")
