"""The rules engine: a catalogue of named rules, a versioned rules file, and evaluation.

ruleset = load_ruleset()                      # processors/rules/rules.toml
ctx = RuleContext(purchase, features, blocked_wallets, blocked_ips)
ev = evaluate(ctx, ruleset, organizer_id)     # results, rule_score, hard_block, errors
"""

from processors.rules.base import (
    ACCOUNT_TAKEOVER,
    BEHAVIORAL,
    CATEGORIES,
    IDENTITY,
    NETWORK,
    TICKETING,
    TRANSACTION,
    Rule,
    RuleContext,
    RuleResult,
)
from processors.rules.catalogue import load_catalogue
from processors.rules.engine import Evaluation, evaluate, evaluate_batch
from processors.rules.lists import ReferenceLists, default_lists
from processors.rules.ruleset import (
    DEFAULT_RULES_PATH,
    RuleSet,
    RuleSetting,
    RulesFileError,
    load_ruleset,
    ruleset_from_dict,
)

CATALOGUE = load_catalogue()

__all__ = [
    "ACCOUNT_TAKEOVER",
    "BEHAVIORAL",
    "CATALOGUE",
    "CATEGORIES",
    "DEFAULT_RULES_PATH",
    "IDENTITY",
    "NETWORK",
    "TICKETING",
    "TRANSACTION",
    "Evaluation",
    "ReferenceLists",
    "Rule",
    "RuleContext",
    "RuleResult",
    "RuleSet",
    "RuleSetting",
    "RulesFileError",
    "default_lists",
    "evaluate",
    "evaluate_batch",
    "load_ruleset",
    "ruleset_from_dict",
]
