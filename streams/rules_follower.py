"""Every worker follows the rules topic: deployed rules files and rule switches.

``RulesFollower(settings, fallback)`` reads ``sentinel.rules.v1`` to its end when it starts
(so a restarted worker decides with the deployed version; the packaged file is the fallback
when nothing was ever deployed), then ``current()``, called by the decider at the start of
each batch, takes whatever arrived since without waiting and returns the ruleset for that
whole batch: a batch is decided by one version, never a mix; the next batch sees the new one.
A record that does not parse is logged and ignored: the worker keeps deciding with the
version it has.
"""

from __future__ import annotations

import logging

import orjson

from infra import topics
from infra.settings import Settings
from processors.rules import RuleSet, RulesFileError
from streams.follower import TopicFollower
from streams.rules_channel import RULE_PREFIX, RULESET_KEY, parse_ruleset

log = logging.getLogger(__name__)


class RulesFollower(TopicFollower):
    def __init__(self, settings: Settings, fallback: RuleSet, catch_up_s: float = 15.0):
        self.ruleset = fallback
        self.shadowed: dict[str, dict] = {}  # rule id -> the switch record that shadowed it
        super().__init__(settings, topics.RULES, catch_up_s)
        self.catch_up(catch_up_s)

    def current(self) -> RuleSet:
        """The ruleset for the next batch, after applying what arrived (never blocks)."""
        self.poll()
        return self.ruleset

    def apply(self, key: bytes | None, value: bytes | None) -> None:
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
