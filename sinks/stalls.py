"""Partitions a sink owns that stopped moving while records wait on them.

librdkafka publishes, per partition a consumer owns, where the application reads next
(``app_offset``) and what is committed, in its statistics (``statistics.interval.ms``). A
partition owned whose position has not moved for ``stall_s`` while the loop was not backing
off is a candidate; it is stalled if the broker says records lie past that position (asked
afresh: the statistics' own ``hi_offset`` is only updated by fetches, so it is stale exactly on
a partition that does not fetch). A stalled partition was left paused, or is stuck in a fetch
state after a broker restart: in a chaos run in CI, twice, after the broker restarted, four of
the six decisions partitions were never read again and 329 of 465 decisions were never stored,
while the other two partitions were. The loop resumes and seeks each where it was
(``SinkLoop._restart_stalled``), which restarts its fetching whatever state it was in.

Pure logic over librdkafka's statistics (decoded JSON), unit-tested without a broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OFFSET_BEGINNING = -2  # librdkafka's logical offset; nothing committed, auto.offset.reset
Key = tuple[str, int]  # topic, partition


@dataclass
class _Seen:
    position: int
    since: float


class StallWatch:
    """Feed it every statistics report (``observe``), or ``quiet`` while the loop backs off
    (its partitions are paused on purpose then). ``candidates()`` gives the partitions that
    have not moved for ``stall_s`` (each at most once per ``stall_s``) with their position;
    ``stalled(ends)`` keeps those still there with records before their end."""

    def __init__(self, stall_s: float):
        self.stall_s = stall_s
        self._seen: dict[Key, _Seen] = {}
        self._candidates: dict[Key, int] = {}

    def quiet(self, now: float) -> None:
        """The loop is backing off: nothing is expected to move until it is over (and what
        was found before is looked at again after it)."""
        self._candidates.clear()
        for seen in self._seen.values():
            seen.since = now

    def observe(self, stats: dict[str, Any], now: float) -> None:
        owned = set()
        for topic, report in stats.get("topics", {}).items():
            for number, p in report.get("partitions", {}).items():
                key = (topic, int(number))
                if key[1] < 0 or not p.get("desired"):
                    continue  # -1 is librdkafka's unassigned pseudo-partition
                owned.add(key)
                position, seen = position_of(p), self._seen.get(key)
                if seen is None or seen.position != position:
                    self._seen[key] = _Seen(position, now)
                elif now - seen.since >= self.stall_s:
                    self._candidates[key] = position
                    seen.since = now  # once per stall_s: a restart takes a moment to show
        for gone in set(self._seen) - owned:
            del self._seen[gone]
        for gone in set(self._candidates) - owned:
            del self._candidates[gone]

    def candidates(self) -> dict[Key, int]:
        found, self._candidates = self._candidates, {}
        return found

    def stalled(self, asked: dict[Key, int], ends: dict[Key, int]) -> dict[Key, int]:
        """Of the candidates ``asked`` (with their positions then), those still owned and at
        that position whose partition's end (``ends``, from the broker) lies past it."""
        return {key: position for key, position in asked.items()
                if key in ends and key in self._seen and self._seen[key].position == position
                and ends[key] > max(position, 0)}  # fmt: skip


def position_of(p: dict[str, Any]) -> int:
    """Where the application reads the partition next: the next offset handed to it, else the
    committed one, else the beginning (``auto.offset.reset`` is earliest)."""
    for name in ("app_offset", "committed_offset"):
        if (offset := p.get(name, -1001)) >= 0:
            return offset
    return OFFSET_BEGINNING
