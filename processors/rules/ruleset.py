"""The versioned rules file: every rule's definition (``definitions.py``: category, weight,
parameters, and its ``when`` / ``score`` / ``reason`` expressions), policy thresholds, and
per-organizer overrides of thresholds and of rules' enablement, weight and parameters.
Validated and compiled on load: a bad key, value or expression raises ``RulesFileError``
naming the rule (and for an expression the line, column and token).

    version = "2026.04.1"
    [policy]                                  # thresholds for processors.policy
    block = 0.85
    [rules.new_account]
    category = "identity"
    weight = 0.3
    params = { max_age_days = 1.0 }
    when = "0 <= account_age_days < p.max_age_days"
    reason = "account created {account_age_days * 24:.1f} h ago (< {p.max_age_days:g} d)"
    [organizers.org42.policy]                 # an organizer's overrides
    review = 0.6
    [organizers.org42.rules.new_account.params]
    max_age_days = 2.0
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from processors.policy import DEFAULT_THRESHOLDS, Thresholds
from processors.rules.definitions import (
    CompiledRule,
    RuleDef,
    RuleSetting,
    RulesFileError,
    as_table,
    compile_rule,
    definition,
    only,
    override,
)
from processors.rules.lists import ReferenceLists, default_lists
from processors.rules.program import Program

DEFAULT_RULES_PATH = Path(__file__).with_name("rules.toml")
TOP_KEYS = {"version", "description", "policy", "rules", "organizers"}
ORGANIZER_KEYS = {"policy", "rules"}


class ActiveRule(NamedTuple):
    """An enabled rule with a weight above 0, its effective setting and compiled form."""

    rule: RuleDef
    setting: RuleSetting
    compiled: CompiledRule


class RuleSet:
    """A validated, compiled rule configuration; ``active`` is what is evaluated, in file
    order. ``for_organizer(id)`` is the view with that organizer's overrides."""

    def __init__(
        self,
        version: str,
        rules: Mapping[str, RuleDef],
        settings: Mapping[str, RuleSetting],
        compiled: Mapping[str, CompiledRule],
        thresholds: Thresholds = DEFAULT_THRESHOLDS,
        organizers: Mapping[str, RuleSet] | None = None,
        organizer_id: str | None = None,
    ) -> None:
        self.version = version
        self.rules = MappingProxyType(dict(rules))
        self.settings = MappingProxyType(dict(settings))
        self.thresholds = thresholds
        self.organizers = MappingProxyType(dict(organizers or {}))
        self.organizer_id = organizer_id
        self.active = tuple(
            ActiveRule(self.rules[rule_id], s, compiled[rule_id])
            for rule_id, s in self.settings.items()
            if s.enabled and s.weight > 0
        )
        self.active_by_id = MappingProxyType({a.rule.id: a for a in self.active})
        # every active rule's ``when`` and ``score`` as one native program (``engine``)
        self.program = Program([a.compiled.code for a in self.active])

    def for_organizer(self, organizer_id: str | None) -> RuleSet:
        """The view with ``organizer_id``'s overrides, or this ruleset if it has none."""
        if organizer_id is None:
            return self
        return self.organizers.get(organizer_id, self)

    @classmethod
    def default(cls) -> RuleSet:
        """The shipped rules with their own settings: no organizer overrides, default policy
        thresholds, version "builtin"."""
        doc = tomllib.loads(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
        return ruleset_from_dict({"version": "builtin", "rules": doc.get("rules", {})},
                                 source=f"{DEFAULT_RULES_PATH} (builtin)")  # fmt: skip

    def __repr__(self) -> str:
        org = f", organizer={self.organizer_id!r}" if self.organizer_id else ""
        return f"RuleSet(version={self.version!r}, active={len(self.active)}{org})"


def load_ruleset(path: str | Path = DEFAULT_RULES_PATH,
                 lists: ReferenceLists | None = None) -> RuleSet:  # fmt: skip
    """Read, validate and compile a rules file (reference lists: the shipped ones)."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RulesFileError(f"{path}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RulesFileError(f"{path}: invalid TOML: {exc}") from exc
    return ruleset_from_dict(doc, source=str(path), lists=lists)


def ruleset_from_dict(doc: Mapping[str, Any], source: str = "<rules>",
                      lists: ReferenceLists | None = None) -> RuleSet:  # fmt: skip
    def fail(message: str) -> RulesFileError:
        return RulesFileError(f"{source}: {message}")

    only(doc, TOP_KEYS, "top level", fail)
    version = doc.get("version")
    if not isinstance(version, str) or not version.strip():
        raise fail("'version' must be a non-empty string")
    lists = default_lists() if lists is None else lists
    thresholds = _thresholds(doc.get("policy", {}), DEFAULT_THRESHOLDS, "policy", fail)
    rules: dict[str, RuleDef] = {}
    settings: dict[str, RuleSetting] = {}
    for rule_id, table in as_table(doc.get("rules", {}), "rules", fail).items():
        rules[rule_id], settings[rule_id] = definition(rule_id, table, fail)
    cache: dict[tuple, CompiledRule] = {}
    compiled = _compile(rules, settings, lists, cache, "rules", fail)
    organizers: dict[str, RuleSet] = {}
    for org_id, table in as_table(doc.get("organizers", {}), "organizers", fail).items():
        where = f"organizers.{org_id}"
        only(as_table(table, where, fail), ORGANIZER_KEYS, where, fail)
        org_thresholds = _thresholds(table.get("policy", {}), thresholds, f"{where}.policy", fail)
        org_settings = _overrides(rules, settings, table.get("rules", {}), f"{where}.rules", fail)
        org_compiled = _compile(rules, org_settings, lists, cache, f"{where}.rules", fail)
        organizers[org_id] = RuleSet(version, rules, org_settings, org_compiled, org_thresholds,
                                     organizer_id=org_id)  # fmt: skip
    return RuleSet(version, rules, settings, compiled, thresholds, organizers)


def _compile(rules: Mapping[str, RuleDef], settings: Mapping[str, RuleSetting],
             lists: ReferenceLists, cache: dict[tuple, CompiledRule], where: str,
             fail: Any) -> dict[str, CompiledRule]:  # fmt: skip
    """Each rule compiled for its parameters; the same parameters share one compilation."""
    out = {}
    for rule_id, rule in rules.items():
        params = settings[rule_id].params
        key = (rule_id, tuple(sorted(params.items())))
        if key not in cache:
            cache[key] = compile_rule(rule, params, lists, f"{where}.{rule_id}", fail)
        out[rule_id] = cache[key]
    return out


def _overrides(rules: Mapping[str, RuleDef], base: Mapping[str, RuleSetting], table: Any,
               where: str, fail: Any) -> dict[str, RuleSetting]:  # fmt: skip
    merged = dict(base)
    for rule_id, entry in as_table(table, where, fail).items():
        rule = rules.get(rule_id)
        if rule is None:
            near = difflib.get_close_matches(rule_id, rules, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise fail(f"{where}.{rule_id}: unknown rule {rule_id!r}{hint}")
        merged[rule_id] = override(rule, merged[rule_id], entry, f"{where}.{rule_id}", fail)
    return merged


def _thresholds(table: Any, base: Thresholds, where: str, fail: Any) -> Thresholds:
    values = {"block": base.block, "review": base.review, "two_fa": base.two_fa,
              "two_fa_model": base.two_fa_model}
    only(as_table(table, where, fail), set(values), where, fail)
    for name, value in table.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail(f"{where}.{name}: expected a number, got {value!r}")
        values[name] = float(value)
    try:
        return Thresholds(**values)
    except ValueError as exc:
        raise fail(f"{where}: {exc}") from exc
