"""The worker's decider: the champion model (followed without restart), the rules file and
the Redis blocklists around ``processors.decide.decide_batch``."""

from __future__ import annotations

import logging
from datetime import datetime

from infra.settings import Settings
from processors.decide import Blocked, Outcome, decide_batch
from processors.features import FEATURE_NAMES
from processors.rules import load_ruleset

log = logging.getLogger(__name__)


class LiveDecider:
    def __init__(self, settings: Settings):
        import redis

        from models.holder import ModelHolder
        from sinks.blocklist import Blocklist

        self.models = ModelHolder(expected_features=FEATURE_NAMES)
        self.ruleset = load_ruleset()
        self.blocklist = Blocklist(redis.Redis.from_url(settings.redis.dsn))
        log.info("scoring with model %s and rules %s", self.models.model.version,
                 self.ruleset.version)

    def blocked(self, purchases: list[dict]) -> Blocked:
        """Blocklist hits of a batch: one Redis round trip (a pipeline) per batch, called
        inline (a thread hand-off costs more than the ~0.2 ms loopback round trip)."""
        hits = self.blocklist.lookup({
            "wallet": [p["wallet"] for p in purchases] + [p["seller_wallet"] for p in purchases
                                                          if p.get("seller_wallet")],
            "ip": [p["ip"] for p in purchases],
        })
        return Blocked(wallets=hits["wallet"], ips=hits["ip"])

    def decide(self, purchases: list[dict], features: list[dict], blocked: Blocked,
               decided_at: datetime) -> list[Outcome]:
        self.models.maybe_reload()
        return decide_batch(purchases, features, self.models.model, self.ruleset, blocked,
                            decided_at, challenger=self.models.challenger)
