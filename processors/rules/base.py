"""What a rule gives back, and the categories rules are filed under."""

from __future__ import annotations

from dataclasses import dataclass

IDENTITY = "identity"
BEHAVIORAL = "behavioral"
TRANSACTION = "transaction"
NETWORK = "network"
ACCOUNT_TAKEOVER = "account_takeover"
TICKETING = "ticketing"
CATEGORIES = (IDENTITY, BEHAVIORAL, TRANSACTION, NETWORK, ACCOUNT_TAKEOVER, TICKETING)


@dataclass(frozen=True, slots=True)
class RuleResult:
    """One rule that fired for one purchase: its score in [0, 1] and the rendered reason."""

    rule_id: str
    category: str
    score: float
    reason: str
    hard: bool = False
