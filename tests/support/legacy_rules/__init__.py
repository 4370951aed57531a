"""The rules engine as it was before rules became expressions: 74 Python functions called one
by one per purchase. Kept ONLY as the reference that the expression engine is proven equal to
(``tests/unit/test_rules_equivalence.py``) and measured against (``sentinel bench rules``).
Nothing on the decision path imports it.

    ctx = RuleContext(purchase, features, blocked_wallets, blocked_ips)
    evaluate(ctx, ruleset.for_organizer(org))   # the file's settings, the old functions
"""

from __future__ import annotations

from tests.support.legacy_rules.base import CATALOGUE, Rule, RuleContext
from tests.support.legacy_rules.engine import Evaluation, evaluate


def load_catalogue() -> dict[str, Rule]:
    """The full catalogue (imports the rule modules once)."""
    from tests.support.legacy_rules import (  # noqa: F401
        account_takeover,
        behavioral,
        identity,
        network,
        ticketing,
        transaction,
    )

    return CATALOGUE


__all__ = ["CATALOGUE", "Evaluation", "Rule", "RuleContext", "evaluate", "load_catalogue"]
