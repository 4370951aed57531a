"""The versioned rules file: per-rule enablement, weight and parameters, policy thresholds,
and per-organizer overrides of all of them. Validated on load: an unknown rule, an unknown
parameter or a wrongly typed value raises ``RulesFileError`` naming the rule and parameter.

    version = "2026.03.1"
    [policy]                                  # thresholds for processors.policy
    block = 0.85
    [rules.new_account]
    enabled = true
    weight = 0.3
    params = { max_age_days = 1.0 }
    [organizers.org42.policy]                 # an organizer's overrides
    review = 0.6
    [organizers.org42.rules.quantity_over_limit.params]
    max_tickets = 4
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from processors.policy import DEFAULT_THRESHOLDS, Thresholds
from processors.rules.base import CATALOGUE, Rule
from processors.rules.catalogue import load_catalogue

DEFAULT_RULES_PATH = Path(__file__).with_name("rules.toml")
TOP_KEYS = {"version", "description", "policy", "rules", "organizers"}
RULE_KEYS = {"enabled", "weight", "params"}
ORGANIZER_KEYS = {"policy", "rules"}


class RulesFileError(ValueError):
    """A rules file that cannot be used; the message names the file, rule and parameter."""


@dataclass(frozen=True, slots=True)
class RuleSetting:
    enabled: bool
    weight: float
    params: Mapping[str, Any]


class ActiveRule(NamedTuple):
    """An enabled rule with its effective settings, flattened for the evaluation loop."""

    fn: Any  # the rule's check function: (ctx, params) -> (score, reason) | None
    params: Mapping[str, Any]
    weight: float
    rule: Rule


class RuleSet:
    """A validated rule configuration; ``active`` is what ``evaluate`` runs, in file order."""

    def __init__(
        self,
        version: str,
        settings: Mapping[str, RuleSetting],
        thresholds: Thresholds = DEFAULT_THRESHOLDS,
        organizers: Mapping[str, RuleSet] | None = None,
        organizer_id: str | None = None,
    ) -> None:
        self.version = version
        self.settings = MappingProxyType(dict(settings))
        self.thresholds = thresholds
        self.organizers = MappingProxyType(dict(organizers or {}))
        self.organizer_id = organizer_id
        self.active = tuple(
            ActiveRule(CATALOGUE[rule_id].fn, s.params, s.weight, CATALOGUE[rule_id])
            for rule_id, s in self.settings.items()
            if s.enabled and s.weight > 0
        )

    def for_organizer(self, organizer_id: str | None) -> RuleSet:
        """The view with ``organizer_id``'s overrides, or this ruleset if it has none."""
        if organizer_id is None:
            return self
        return self.organizers.get(organizer_id, self)

    @classmethod
    def default(cls) -> RuleSet:
        """Every catalogue rule with its built-in defaults."""
        return cls("builtin", _catalogue_settings())

    def __repr__(self) -> str:
        org = f", organizer={self.organizer_id!r}" if self.organizer_id else ""
        return f"RuleSet(version={self.version!r}, active={len(self.active)}{org})"


def load_ruleset(path: str | Path = DEFAULT_RULES_PATH) -> RuleSet:
    """Read and validate a rules file."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RulesFileError(f"{path}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RulesFileError(f"{path}: invalid TOML: {exc}") from exc
    return ruleset_from_dict(doc, source=str(path))


def ruleset_from_dict(doc: Mapping[str, Any], source: str = "<rules>") -> RuleSet:
    def fail(message: str) -> RulesFileError:
        return RulesFileError(f"{source}: {message}")

    _only(doc, TOP_KEYS, "top level", fail)
    version = doc.get("version")
    if not isinstance(version, str) or not version.strip():
        raise fail("'version' must be a non-empty string")
    thresholds = _thresholds(doc.get("policy", {}), DEFAULT_THRESHOLDS, "policy", fail)
    settings = _merge_rules(_catalogue_settings(), doc.get("rules", {}), "rules", fail)
    organizers: dict[str, RuleSet] = {}
    for org_id, table in _table(doc.get("organizers", {}), "organizers", fail).items():
        where = f"organizers.{org_id}"
        _only(_table(table, where, fail), ORGANIZER_KEYS, where, fail)
        org_thresholds = _thresholds(table.get("policy", {}), thresholds, f"{where}.policy", fail)
        org_settings = _merge_rules(settings, table.get("rules", {}), f"{where}.rules", fail)
        organizers[org_id] = RuleSet(version, org_settings, org_thresholds, organizer_id=org_id)
    return RuleSet(version, settings, thresholds, organizers)


def _catalogue_settings() -> dict[str, RuleSetting]:
    load_catalogue()
    return {r.id: RuleSetting(True, r.weight, r.params) for r in CATALOGUE.values()}


def _table(value: Any, where: str, fail: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(f"{where} must be a table, got {type(value).__name__}")
    return value


def _only(table: Mapping[str, Any], allowed: set[str], where: str, fail: Any) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise fail(f"{where}: unknown key {unknown[0]!r} (expected one of {sorted(allowed)})")


def _merge_rules(
    base: Mapping[str, RuleSetting], table: Any, where: str, fail: Any
) -> dict[str, RuleSetting]:
    merged = dict(base)
    for rule_id, entry in _table(table, where, fail).items():
        rule = CATALOGUE.get(rule_id)
        if rule is None:
            near = difflib.get_close_matches(rule_id, CATALOGUE, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise fail(f"{where}.{rule_id}: unknown rule {rule_id!r}{hint}")
        here = f"{where}.{rule_id}"
        _only(_table(entry, here, fail), RULE_KEYS, here, fail)
        current = merged[rule_id]
        enabled = entry.get("enabled", current.enabled)
        if not isinstance(enabled, bool):
            raise fail(f"{here}.enabled: expected bool, got {enabled!r}")
        weight = entry.get("weight", current.weight)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 1:
            raise fail(f"{here}.weight: expected a number in [0, 1], got {weight!r}")
        params = dict(current.params)
        for name, value in _table(entry.get("params", {}), f"{here}.params", fail).items():
            if name not in rule.params:
                known = ", ".join(rule.params) or "none"
                raise fail(
                    f"{here}.params.{name}: rule {rule_id!r} has no parameter {name!r} "
                    f"(known: {known})"
                )
            params[name] = _coerce(value, rule.params[name], f"{here}.params.{name}", fail)
        merged[rule_id] = RuleSetting(enabled, float(weight), MappingProxyType(params))
    return merged


def _coerce(value: Any, default: Any, where: str, fail: Any) -> Any:
    """``value`` converted to the type of the parameter's default, or a RulesFileError."""
    if isinstance(default, tuple):
        if not isinstance(value, list):
            raise fail(f"{where}: expected a list, got {type(value).__name__} ({value!r})")
        element = default[0] if default else ""
        return tuple(_coerce(v, element, f"{where}[{i}]", fail) for i, v in enumerate(value))
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


def _thresholds(table: Any, base: Thresholds, where: str, fail: Any) -> Thresholds:
    values = {"block": base.block, "review": base.review, "two_fa": base.two_fa}
    _only(_table(table, where, fail), set(values), where, fail)
    for name, value in table.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail(f"{where}.{name}: expected a number, got {value!r}")
        values[name] = float(value)
    try:
        return Thresholds(**values)
    except ValueError as exc:
        raise fail(f"{where}: {exc}") from exc
