"""One rule of the rules file: its definition, validated, and compiled for given parameters.

    [rules.high_velocity_1h]
    category = "behavioral"
    description = "Many purchases by one wallet within an hour."
    weight = 0.45                                  # share in the noisy-OR rule score
    enabled = true                                 # default true
    params = { max_purchases = 5 }                 # declared parameters and their defaults
    when = "velocity_1h >= p.max_purchases"        # a boolean expression: the rule fires
    score = "ramp(velocity_1h, p.max_purchases)"   # a number in [0, 1]; default 1.0
    reason = "{velocity_1h:g} purchases by this wallet in the last hour (threshold {p.max_purchases:g})"
    hard = false                                   # true: a hit forces BLOCKED (blocklists)
    ceiling = { share = 0.02, window = "5m" }      # the blast-radius breaker (processors/breaker.py)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from processors.breaker import Ceiling, parse_ceiling
from processors.rules.base import CATEGORIES
from processors.rules.compiler import Node, Scope, compile_checked
from processors.rules.functions import BOOL, NUM
from processors.rules.program import RuleCode, rule_code
from processors.rules.rowwise import RowReason, row_reason
from processors.rules.syntax import ExpressionError
from processors.rules.template import Template

DEFINITION_KEYS = {"category", "description", "weight", "enabled", "params", "when", "score",
                   "reason", "hard", "ceiling"}  # fmt: skip
SETTING_KEYS = {"enabled", "weight", "params"}  # what an organizer may override
DEFAULT_SCORE = "1.0"

Fail = Callable[[str], Exception]


class RulesFileError(ValueError):
    """A rules file that cannot be used; the message names the file, rule and parameter (and
    for an expression, the line, column and token)."""


@dataclass(frozen=True, slots=True)
class RuleDef:
    id: str
    category: str
    description: str
    hard: bool
    when: str
    score: str
    reason: str
    params: Mapping[str, Any]  # declared parameters with their defaults
    ceiling: Ceiling | None = None  # the breaker's ceiling, when the file sets one


@dataclass(frozen=True, slots=True)
class RuleSetting:
    enabled: bool
    weight: float
    params: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CompiledRule:
    when: Node
    score: Node
    reason: Template
    row: RowReason  # the reason as a function of one row, for a few rows (``rowwise``)
    code: RuleCode  # ``when`` and ``score`` as native program code (``program``)
    # the score every row that fires gets, when ``score`` is a constant (most rules): what
    # the engine's column of it would hold, clipped to [0, 1] with NaN as 0
    constant_score: float | None = None


def definition(rule_id: str, table: Any, fail: Fail) -> tuple[RuleDef, RuleSetting]:
    """A rule's definition and its base setting, from its ``[rules.<id>]`` table."""
    here = f"rules.{rule_id}"
    table = as_table(table, here, fail)
    only(table, DEFINITION_KEYS, here, fail)
    for key in ("category", "weight", "when", "reason"):
        if key not in table:
            raise fail(f"{here}: missing '{key}'")
    category = table["category"]
    if category not in CATEGORIES:
        raise fail(f"{here}.category: {category!r} is not one of {', '.join(CATEGORIES)}")
    texts = {k: table.get(k, d) for k, d in
             (("description", ""), ("when", ""), ("score", DEFAULT_SCORE), ("reason", ""))}  # fmt: skip
    for key, value in texts.items():
        if not isinstance(value, str):
            raise fail(f"{here}.{key}: expected a text, got {type(value).__name__}")
    hard = table.get("hard", False)
    if not isinstance(hard, bool):
        raise fail(f"{here}.hard: expected bool, got {hard!r}")
    params = {}
    for name, value in as_table(table.get("params", {}), f"{here}.params", fail).items():
        params[name] = _declared(value, f"{here}.params.{name}", fail)
    ceiling = parse_ceiling(table["ceiling"], f"{here}.ceiling", fail) if "ceiling" in table else None
    rule = RuleDef(rule_id, category, " ".join(texts["description"].split()), hard,
                   texts["when"], texts["score"], texts["reason"], MappingProxyType(params),
                   ceiling)  # fmt: skip
    enabled, weight = _switches(table, True, 0.0, here, fail)
    return rule, RuleSetting(enabled, weight, rule.params)


def override(rule: RuleDef, current: RuleSetting, table: Any, here: str,
             fail: Fail) -> RuleSetting:  # fmt: skip
    """``current`` with an organizer's ``enabled``, ``weight`` and ``params`` applied."""
    table = as_table(table, here, fail)
    only(table, SETTING_KEYS, here, fail)
    enabled, weight = _switches(table, current.enabled, current.weight, here, fail)
    params = dict(current.params)
    for name, value in as_table(table.get("params", {}), f"{here}.params", fail).items():
        if name not in rule.params:
            known = ", ".join(rule.params) or "none"
            raise fail(f"{here}.params.{name}: rule {rule.id!r} has no parameter {name!r} "
                       f"(known: {known})")  # fmt: skip
        params[name] = coerce(value, rule.params[name], f"{here}.params.{name}", fail)
    return RuleSetting(enabled, weight, MappingProxyType(params))


def _switches(table: Mapping[str, Any], enabled: bool, weight: float, here: str,
              fail: Fail) -> tuple[bool, float]:  # fmt: skip
    enabled = table.get("enabled", enabled)
    if not isinstance(enabled, bool):
        raise fail(f"{here}.enabled: expected bool, got {enabled!r}")
    weight = table.get("weight", weight)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 1:
        raise fail(f"{here}.weight: expected a number in [0, 1], got {weight!r}")
    return enabled, float(weight)


def compile_rule(rule: RuleDef, params: Mapping[str, Any], lists: Mapping[str, Any],
                 where: str, fail: Fail) -> CompiledRule:  # fmt: skip
    """The rule's expressions compiled for ``params``; errors name ``where`` and the field."""
    scope = Scope(params, lists)
    field = "when"
    try:
        when, *when_checked = compile_checked(rule.when, scope, BOOL)
        field = "score"
        score, *score_checked = compile_checked(rule.score, scope, NUM)
        field = "reason"
        reason = Template(rule.reason, scope)
    except ExpressionError as exc:
        raise fail(f"{where}.{field}: {exc}") from None
    constant = _constant_score(score)
    code = rule_code(when_checked, score_checked, constant, reason, scope)
    return CompiledRule(when, score, reason, row_reason(rule.id, reason.parts, scope), code,
                        constant)  # fmt: skip


def _constant_score(score: Node) -> float | None:
    """A constant score as the engine clips a score column (``engine._evaluate``, under its
    error state); None for a score that reads the batch, or a constant whose column would
    not be a plain float64 one or would raise there (then the engine computes it as always)."""
    if not score.const:
        return None
    value = score.run(None)
    if isinstance(value, np.ndarray):
        return None
    try:
        with np.errstate(divide="raise", invalid="raise", over="ignore"):
            clipped = np.clip(np.full(1, value, dtype=np.float64), 0.0, 1.0)
            return float(np.where(np.isnan(clipped), 0.0, clipped)[0])
    except (ArithmeticError, TypeError, ValueError):
        return None


def _declared(value: Any, where: str, fail: Fail) -> Any:
    """A declared parameter default: a number, bool, text or list of texts."""
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise fail(f"{where}: a list parameter holds texts only, got {value!r}")
        return tuple(value)
    if not isinstance(value, bool | int | float | str):
        raise fail(f"{where}: expected a number, bool, text or list, got {type(value).__name__}")
    return value


def coerce(value: Any, default: Any, where: str, fail: Fail) -> Any:
    """``value`` converted to the type of the parameter's default, or a RulesFileError."""
    if isinstance(default, tuple):
        if not isinstance(value, list):
            raise fail(f"{where}: expected a list, got {type(value).__name__} ({value!r})")
        return tuple(coerce(v, "", f"{where}[{i}]", fail) for i, v in enumerate(value))
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        expected = type(default).__name__
        raise fail(f"{where}: expected {expected}, got {type(value).__name__} ({value!r})")
    return value


def as_table(value: Any, where: str, fail: Fail) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(f"{where} must be a table, got {type(value).__name__}")
    return value


def only(table: Mapping[str, Any], allowed: set[str], where: str, fail: Fail) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise fail(f"{where}: unknown key {unknown[0]!r} (expected one of {sorted(allowed)})")
