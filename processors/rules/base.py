"""What a rule gives back, and the categories rules are filed under."""

from __future__ import annotations

from typing import NamedTuple

IDENTITY = "identity"
BEHAVIORAL = "behavioral"
TRANSACTION = "transaction"
NETWORK = "network"
ACCOUNT_TAKEOVER = "account_takeover"
TICKETING = "ticketing"
CATEGORIES = (IDENTITY, BEHAVIORAL, TRANSACTION, NETWORK, ACCOUNT_TAKEOVER, TICKETING)


class RuleResult(NamedTuple):
    """One rule that fired for one purchase: its score in [0, 1] and the rendered reason (a
    named tuple: a batch makes one per hit, and a tuple is the cheapest immutable record)."""

    rule_id: str
    category: str
    score: float
    reason: str
    hard: bool = False
