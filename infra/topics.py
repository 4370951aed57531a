"""The one registry of Sentinel's topics. Nothing else spells a topic name.

Names are stable identities (``sentinel.<thing>.v1``); the value schema of each is
``schemas/<schema>.avsc`` under the subject ``<topic>-value``. Every topic has a dead-letter
twin ``<topic>.dlq`` whose values are ``DeadLetter`` records.
"""

from __future__ import annotations

from dataclasses import dataclass

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str  # what the key is, for people: "wallet", "purchase_id", ...
    schema: str  # file stem in schemas/
    partitions: int = 6
    retention_ms: int = 7 * DAY_MS
    compacted: bool = False

    def config(self) -> dict[str, str]:
        policy = "compact" if self.compacted else "delete"
        return {"cleanup.policy": policy, "retention.ms": str(self.retention_ms)}

    @property
    def subject(self) -> str:
        return f"{self.name}-value"


PURCHASES = TopicSpec("sentinel.purchases.v1", "wallet", "purchase", retention_ms=90 * DAY_MS)
CHAIN_TRANSFERS = TopicSpec(
    "sentinel.chain-transfers.v1", "wallet", "chain_transfer", retention_ms=90 * DAY_MS
)
AUTH_EVENTS = TopicSpec("sentinel.auth-events.v1", "wallet", "auth_event", retention_ms=30 * DAY_MS)
LABELS = TopicSpec("sentinel.labels.v1", "purchase_id", "label", retention_ms=365 * DAY_MS)
# As many partitions as PURCHASES: a decision goes to the partition numbered like its
# purchase's, where a worker reads it back after a redelivery (streams/redelivery.py).
DECISIONS = TopicSpec("sentinel.decisions.v1", "wallet", "decision", retention_ms=180 * DAY_MS)
SECURITY_EVENTS = TopicSpec(
    "sentinel.security-events.v1", "ip or wallet", "security_event", retention_ms=90 * DAY_MS
)
ALERTS = TopicSpec("sentinel.alerts.v1", "alert group key", "alert", retention_ms=365 * DAY_MS)
# Internal repartition: chain transfers re-keyed by the sending wallet (the source topic is
# keyed by the receiver), so each side's wallet state is updated on its own partition.
TRANSFERS_BY_SENDER = TopicSpec(
    "sentinel.transfers-by-sender.v1", "sending wallet", "chain_transfer", retention_ms=2 * DAY_MS
)
# The chain listener's checkpoint: compacted, one record per (chain, listener).
CHAIN_CHECKPOINTS = TopicSpec(
    "sentinel.chain-checkpoints.v1", "chain_id", "", partitions=1, compacted=True
)
# Deployed rules and rule switches, followed by every worker (``streams/rules_follower.py``):
# compacted, key "ruleset" -> the active rules file (JSON: version, TOML text, sha256),
# key "rule:<id>" -> that rule's breaker state (shadowed or enforced). One partition: order.
RULES = TopicSpec("sentinel.rules.v1", "ruleset | rule:<id>", "", partitions=1, compacted=True)
# Confirmed fraud as marks on entities: each label joined with its purchase's wallet, card,
# device and account (``sinks/marks.py``), followed by every worker. JSON, compacted: the
# latest label of each purchase (a correction replaces the chargeback it overturns). One
# partition: labels are few (about the fraud rate of the traffic).
FRAUD_MARKS = TopicSpec("sentinel.fraud-marks.v1", "purchase_id", "", partitions=1,
                        compacted=True)

SOURCES: tuple[TopicSpec, ...] = (
    PURCHASES,
    CHAIN_TRANSFERS,
    AUTH_EVENTS,
    LABELS,
    DECISIONS,
    SECURITY_EVENTS,
    ALERTS,
)


def dlq(spec: TopicSpec) -> TopicSpec:
    """The dead-letter twin of a topic: original key, DeadLetter value, 30 days."""
    return TopicSpec(
        f"{spec.name}.dlq", spec.key, "dead_letter", partitions=1, retention_ms=30 * DAY_MS
    )


ALL: tuple[TopicSpec, ...] = (
    *SOURCES,
    TRANSFERS_BY_SENDER,
    CHAIN_CHECKPOINTS,
    RULES,
    FRAUD_MARKS,
    *(dlq(t) for t in SOURCES),
)


def full_name(spec: TopicSpec, prefix: str = "") -> str:
    """The broker-side name: the settings' topic prefix (tests, tenants) plus the name."""
    return f"{prefix}{spec.name}"
