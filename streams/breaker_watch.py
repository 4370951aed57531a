"""The blast-radius breaker in the worker: counts each batch's enforced rule hits
(``processors.breaker.RuleBreaker``), and when a rule trips, switches it to shadow mode for
every worker (a ``rule:<id>`` record on the rules topic, applied here at once), raises a HIGH
``rule_shadowed`` security event naming the rule and the share that tripped it, and shows it
in the metrics (``sentinel_rule_shadowed``, ``sentinel_rule_breaker_trips_total``).
``sentinel rules enable RULE`` switches it back."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from infra.settings import Settings
from processors.breaker import RuleBreaker, Trip
from processors.decide import Outcome
from streams import metrics
from streams.rules_channel import publish, rule_key, switch_value

log = logging.getLogger(__name__)


class BreakerWatch:
    def __init__(self, settings: Settings, rules, clock=time.time):
        self.settings, self.rules, self.clock = settings, rules, clock
        self.breaker, self.version = RuleBreaker(), None
        self.pending: list[dict] = []
        self.shown: set[str] = set()

    def observe(self, outcomes: list[Outcome]) -> None:
        ruleset, shadowed = self.rules.ruleset, set(self.rules.shadowed)
        if ruleset.version != self.version:
            self.version = ruleset.version
            self.breaker.ceilings = {r.id: r.ceiling for r in ruleset.rules.values() if r.ceiling}
        self.breaker.forget(shadowed)
        now_ms = int(self.clock() * 1000)
        trips = self.breaker.observe(
            now_ms, ((o.fired, o.blocked_by) for o in outcomes), shadowed)
        for trip in trips:
            self._trip(trip, now_ms)
        self._show(set(self.rules.shadowed))

    def _trip(self, trip: Trip, now_ms: int) -> None:
        c = trip.ceiling
        reason = (f"{trip.hits} of {trip.purchases} purchases ({trip.share:.1%}) {c.of} in "
                  f"{c.window_ms // 1000} s, ceiling {c.share:.1%}")
        log.warning("rule %s switched to shadow mode: %s", trip.rule_id, reason)
        value = switch_value(trip.rule_id, True, reason)
        self.rules.apply(rule_key(trip.rule_id).encode(), value)  # this worker: at once
        try:
            publish(self.settings, rule_key(trip.rule_id), value)  # every worker
        except Exception:  # the switch still holds here; the event says what happened
            log.exception("could not publish the shadow switch of rule %s", trip.rule_id)
        metrics.RULE_TRIPS.labels(trip.rule_id).inc()
        self.pending.append(_event(trip, reason, self.version, now_ms))

    def _show(self, shadowed: set[str]) -> None:
        for rule_id in shadowed - self.shown:
            metrics.RULE_SHADOWED.labels(rule_id).set(1)
        for rule_id in self.shown - shadowed:
            metrics.RULE_SHADOWED.labels(rule_id).set(0)
        self.shown = shadowed

    def events(self) -> list[dict]:
        events, self.pending = self.pending, []
        return events


def _event(trip: Trip, reason: str, version: str | None, now_ms: int) -> dict:
    at = datetime.fromtimestamp(now_ms / 1000, UTC)
    return {
        "event_id": f"rule_shadowed_{trip.rule_id}_{now_ms}", "occurred_at": at,
        "kind": "rule_shadowed", "severity": "HIGH", "source": "scoring", "ip": None,
        "wallet": None, "user_id": None, "purchase_id": None,
        "details": {"rule": trip.rule_id, "share": f"{trip.share:.4f}", "hits": str(trip.hits),
                    "purchases": str(trip.purchases), "ceiling": f"{trip.ceiling.share:.4f}",
                    "window_s": str(trip.ceiling.window_ms // 1000), "of": trip.ceiling.of,
                    "rules_version": str(version), "reason": reason},
    }
