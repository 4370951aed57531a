"""Every worker follows the rules topic: deployed rules files and rule switches.

``RulesFollower(settings, fallback)`` reads ``sentinel.rules.v1`` from the beginning to its
end when it starts (so a restarted worker decides with the deployed version; the packaged
file is the fallback when nothing was ever deployed), then ``current()``, called by the
decider at the start of each batch, takes whatever arrived since without waiting and returns
the ruleset for that whole batch: a batch is decided by one version, never a mix; the next
batch sees the new one. A record that does not parse is logged and ignored: the worker keeps
deciding with the version it has.

No consumer group: the partition is assigned, so every worker reads every record.
"""

from __future__ import annotations

import logging
import time
import uuid

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from infra import topics
from infra.settings import Settings
from processors.rules import RuleSet, RulesFileError
from streams.rules_channel import RULE_PREFIX, RULESET_KEY, parse_ruleset

log = logging.getLogger(__name__)


class RulesFollower:
    def __init__(self, settings: Settings, fallback: RuleSet, catch_up_s: float = 15.0):
        self.ruleset = fallback
        self.shadowed: dict[str, dict] = {}  # rule id -> the switch record that shadowed it
        self.topic = topics.full_name(topics.RULES, settings.kafka.topic_prefix)
        conf = settings.kafka.consumer_conf(f"rules-follower-{uuid.uuid4().hex[:8]}",
                                            **{"enable.auto.commit": False})
        self.consumer = Consumer(conf)
        self.consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
        self._catch_up(catch_up_s)

    def _catch_up(self, timeout_s: float) -> None:
        """Read up to the end offset the broker reports now."""
        _, end = self.consumer.get_watermark_offsets(TopicPartition(self.topic, 0), timeout_s)
        deadline, position = time.monotonic() + timeout_s, 0
        while position < end and time.monotonic() < deadline:
            for msg in self.consumer.consume(500, 0.2):
                if msg.error() is None:
                    self._apply(msg.key(), msg.value())
                    position = msg.offset() + 1
        if position < end:
            log.warning("rules topic: read %d of %d records at start-up", position, end)

    def current(self) -> RuleSet:
        """The ruleset for the next batch, after applying what arrived (never blocks)."""
        for msg in self.consumer.consume(100, 0):
            if msg.error() is None:
                self._apply(msg.key(), msg.value())
        return self.ruleset

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        name = (key or b"").decode(errors="replace")
        if value is None:
            return  # a tombstone: nothing to apply
        try:
            record = orjson.loads(value)
            if name == RULESET_KEY:
                self._switch_ruleset(record)
            elif name.startswith(RULE_PREFIX):
                self._switch_rule(name.removeprefix(RULE_PREFIX), record)
        except (RulesFileError, ValueError, KeyError, TypeError) as exc:
            log.error("rules topic: ignoring record %r: %s: %s", name, type(exc).__name__, exc)

    def _switch_ruleset(self, record: dict) -> None:
        ruleset = parse_ruleset(record["body"], source=f"deployed {record['version']}")
        if ruleset.version != self.ruleset.version:
            log.info("rules: %s -> %s (%s)", self.ruleset.version, ruleset.version,
                     record.get("action"))
        self.ruleset = ruleset

    def _switch_rule(self, rule_id: str, record: dict) -> None:
        if record["shadowed"]:
            self.shadowed[rule_id] = record
        else:
            self.shadowed.pop(rule_id, None)

    def close(self) -> None:
        self.consumer.close()
