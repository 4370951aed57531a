"""The worker's decider: the champion model (followed without restart), the rules file and
a local snapshot of the Redis blocklists around ``processors.decide.decide_batch``."""

from __future__ import annotations

import logging
import time
from datetime import datetime

import numpy as np

from infra.settings import Settings
from models.drift import DriftMonitor, drift_event
from processors.decide import FeatureMatrix, Features, Outcome, decide_batch
from processors.features import FEATURE_NAMES
from processors.rules import load_ruleset
from streams import metrics
from streams.breaker_watch import BreakerWatch
from streams.rules_follower import RulesFollower

log = logging.getLogger(__name__)


class LiveDecider:
    def __init__(self, settings: Settings):
        import redis

        from models.holder import ModelHolder
        from sinks.blocklist import Blocklist
        from streams.blocklists import BlocklistSnapshot

        self.models = ModelHolder(expected_features=FEATURE_NAMES)
        self.rules = RulesFollower(settings, fallback=load_ruleset())
        self.breaker = BreakerWatch(settings, self.rules)
        self.drift = DriftWatch(self.models, settings.stream.drift_check_s)
        timeout = settings.stream.redis_timeout_s
        client = redis.Redis.from_url(settings.redis.dsn, socket_timeout=timeout,
                                      socket_connect_timeout=timeout)
        self.blocklists = BlocklistSnapshot(Blocklist(client),
                                            settings.stream.blocklist_refresh_s).start()
        log.info("scoring with model %s and rules %s", self.models.model.version,
                 self.rules.ruleset.version)

    def decide(self, purchases: list[dict], features: Features, decided_at: datetime,
               clusters: list[str | None] | None = None) -> list[Outcome]:
        self.models.maybe_reload()
        blocked = self.blocklists.blocked(purchases)
        ruleset = self.rules.current()  # one version for the whole batch (rules topic)
        features = FeatureMatrix.of(features)  # converted once, read by the drift watch too
        outcomes = decide_batch(purchases, features, self.models.model, ruleset, blocked,
                                decided_at, challenger=self.models.challenger,
                                clusters=clusters, shadowed=frozenset(self.rules.shadowed))
        self.breaker.observe(outcomes)
        metrics.observe_decisions([o.decision for o in outcomes])
        self.drift.observe(features)
        return outcomes

    def events(self, now: datetime) -> list[dict]:
        """Security events of the decider itself: drift, blocklists gone stale, rules the
        breaker shadowed."""
        return self.drift.events(now) + self.blocklists.events() + self.breaker.events()


class DriftWatch:
    """Live features against the champion's training distribution: PSI/KL exported as
    metrics every ``check_s`` seconds, and a ``model_drift`` security event per drifted
    feature (at most one per feature and hour: the event id is per hour)."""

    def __init__(self, models, check_s: float, clock=time.monotonic):
        self.models, self.check_s, self.clock = models, check_s, clock
        self.version, self.monitor = None, None
        self.checked = clock()

    def observe(self, features: Features) -> None:
        model = self.models.model
        if model.version != self.version:
            self.version = model.version
            has = "distributions" in model.metadata
            self.monitor = DriftMonitor.for_model(model) if has else None
        if self.monitor is not None and len(features):
            self.monitor.observe(FeatureMatrix.of(features).X.astype(np.float32))

    def events(self, now: datetime) -> list[dict]:
        if self.monitor is None or len(self.monitor) < 500:
            return []
        if self.clock() - self.checked < self.check_s:
            return []
        self.checked = self.clock()
        report = self.monitor.report()
        metrics.observe_drift(report)
        return [drift_event(f, report[f]["psi"], report[f]["kl"], self.version, now)
                for f in self.monitor.drifted(report)]
