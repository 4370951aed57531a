"""The rules engine: rules written as expressions in a versioned rules file, compiled once,
evaluated over a whole batch.

ruleset = load_ruleset()                              # processors/rules/rules.toml, compiled
batch = RuleBatch(purchases, X, blocked_wallets, blocked_ips)   # X: n x FEATURE_NAMES
evaluation = evaluate_batch(batch, ruleset)           # per row: rule_score, hard_block, results
evaluation.row(i)                                     # Evaluation(results, rule_score, ...)
"""

from processors.rules.base import (
    ACCOUNT_TAKEOVER,
    BEHAVIORAL,
    CATEGORIES,
    IDENTITY,
    NETWORK,
    TICKETING,
    TRANSACTION,
    RuleResult,
)
from processors.rules.batch import TEXT_FIELDS, RuleBatch
from processors.rules.definitions import RuleDef, RuleSetting, RulesFileError
from processors.rules.engine import BatchEvaluation, Evaluation, evaluate_batch
from processors.rules.functions import FUNCTIONS
from processors.rules.lists import ReferenceLists, default_lists
from processors.rules.ruleset import (
    DEFAULT_RULES_PATH,
    ActiveRule,
    RuleSet,
    load_ruleset,
    ruleset_from_dict,
)
from processors.rules.syntax import ExpressionError

__all__ = [
    "ACCOUNT_TAKEOVER",
    "BEHAVIORAL",
    "CATEGORIES",
    "DEFAULT_RULES_PATH",
    "FUNCTIONS",
    "IDENTITY",
    "NETWORK",
    "TEXT_FIELDS",
    "TICKETING",
    "TRANSACTION",
    "ActiveRule",
    "BatchEvaluation",
    "Evaluation",
    "ExpressionError",
    "ReferenceLists",
    "RuleBatch",
    "RuleDef",
    "RuleResult",
    "RuleSet",
    "RuleSetting",
    "RulesFileError",
    "default_lists",
    "evaluate_batch",
    "load_ruleset",
    "ruleset_from_dict",
]
