"""Every worker follows ``sentinel.fraud-marks.v1`` into a ``processors.marks.MarkStore``:
confirmed fraud on wallets, cards, devices and accounts, as of each purchase's event time.

Read to its end at start-up, then ``current()`` applies what arrived: at the start of each
batch, and every second between batches (``streams/agents.py``), so that an idle worker is up
to date when traffic resumes. Each time it applies records it logs how far it has read
("fraud marks: applied N, read to offset P" per partition): the signal that a mark is in
force. Small: only labelled purchases are marked (about the fraud rate of the traffic).
"""

from __future__ import annotations

import logging

import orjson

from infra import topics
from infra.settings import Settings
from processors.marks import MarkStore
from streams.follower import TopicFollower

log = logging.getLogger(__name__)


class MarksFollower(TopicFollower):
    def __init__(self, settings: Settings, catch_up_s: float = 15.0):
        self.store = MarkStore()
        super().__init__(settings, topics.FRAUD_MARKS, catch_up_s)
        self.catch_up(catch_up_s)

    def current(self) -> MarkStore:
        applied = self.poll()
        if applied:
            log.info("fraud marks: applied %d, read to offset %s", applied,
                     ", ".join(f"{p}:{o}" for p, o in sorted(self.position.items())))
        return self.store

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:
            return
        try:
            self.store.apply(orjson.loads(value))
        except (ValueError, KeyError, TypeError) as exc:
            log.error("fraud marks: ignoring record %r: %s: %s", key, type(exc).__name__, exc)
