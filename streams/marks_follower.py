"""Every worker follows ``sentinel.fraud-marks.v1`` into a ``processors.marks.MarkStore``:
confirmed fraud on wallets, cards, devices and accounts, as of each purchase's event time.

Read to its end at start-up, then ``current()`` at the start of each batch applies what
arrived. Small: only labelled purchases are marked (about the fraud rate of the traffic).
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
        self.poll()
        return self.store

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:
            return
        try:
            self.store.apply(orjson.loads(value))
        except (ValueError, KeyError, TypeError) as exc:
            log.error("fraud marks: ignoring record %r: %s: %s", key, type(exc).__name__, exc)
