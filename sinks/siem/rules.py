"""Correlation rules as data: ``rules.toml`` parsed into frozen ``Rule`` values, checked once
at start-up (a bad rules file fails loudly, naming the rule and the field)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACTIONS = ("block_ip", "blacklist_wallet", "lock_account", "notify")
# Automation never bans for good: these actions need a ttl (repeat offenders get longer ones,
# ``sinks.siem.escalation``); a permanent entry is an operator's decision (``sentinel blocklist``).
EXPIRING_ACTIONS = ("block_ip", "blacklist_wallet", "lock_account")
SEVERITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
TYPES = ("event_count", "value_count")
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


class RuleError(ValueError):
    """The rules file is invalid; the message names the rule and the field."""


@dataclass(frozen=True)
class ResponseSpec:
    action: str
    target: str | None = None  # field whose distinct values are acted on; None for notify
    ttl_ms: int | None = None  # the first offence's; required for EXPIRING_ACTIONS


@dataclass(frozen=True)
class Rule:
    name: str
    title: str
    type: str
    kinds: frozenset[str]
    group_by: tuple[tuple[str, ...], ...]  # each field: alternatives, first non-empty wins
    timespan_ms: int
    threshold: int
    severity: str
    value_field: str | None = None
    responses: tuple[ResponseSpec, ...] = ()
    where: tuple[tuple[str, str], ...] = ()  # (field, value): every one must equal


@dataclass(frozen=True)
class RuleSet:
    version: str
    rules: tuple[Rule, ...]


def duration_ms(text: str) -> int:
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"duration must look like 90s, 5m, 1h; got {text!r}")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def load_rules(path: Path) -> RuleSet:
    with open(path, "rb") as f:
        data = tomllib.load(f)
    return parse_rules(data)


def parse_rules(data: dict[str, Any]) -> RuleSet:
    rules = tuple(_rule(raw) for raw in data.get("rules", []))
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise RuleError(f"duplicate rule names in {names}")
    return RuleSet(str(data.get("version", "unversioned")), rules)


def _rule(raw: dict[str, Any]) -> Rule:
    name = raw.get("name", "?")
    try:
        rule = Rule(
            name=str(raw["name"]),
            title=str(raw.get("title", raw["name"])),
            type=_one_of(raw["type"], TYPES, "type"),
            kinds=frozenset(str(k) for k in raw["kinds"]),
            group_by=tuple(tuple(f.split("|")) for f in raw.get("group_by", [])),
            timespan_ms=duration_ms(raw["timespan"]),
            threshold=int(raw["condition"]["gte"]),
            severity=_one_of(raw.get("severity", "MEDIUM"), SEVERITIES, "severity"),
            value_field=raw.get("value_field"),
            responses=tuple(_response(r) for r in raw.get("responses", [])),
            where=_where(raw.get("where", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RuleError(f"rule {name!r}: {exc!r}") from exc
    if rule.type == "value_count" and not rule.value_field:
        raise RuleError(f"rule {name!r}: value_count needs value_field")
    if rule.threshold < 1 or not rule.kinds:
        raise RuleError(f"rule {name!r}: needs kinds and condition.gte >= 1")
    return rule


def _response(raw: dict[str, Any]) -> ResponseSpec:
    action = _one_of(raw["action"], ACTIONS, "action")
    if action != "notify" and not raw.get("target"):
        raise ValueError(f"response {action} needs a target field")
    ttl = raw.get("ttl")
    if action in EXPIRING_ACTIONS and not ttl:
        raise ValueError(f"response {action} needs a ttl (automation never bans for good)")
    return ResponseSpec(action, raw.get("target"), duration_ms(ttl) if ttl else None)


def _where(raw: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise ValueError(f"where must map fields to strings, not {raw!r}")
    return tuple(sorted(raw.items()))


def _one_of(value: Any, allowed: tuple[str, ...], field: str) -> str:
    if value not in allowed:
        raise ValueError(f"{field} must be one of {allowed}, not {value!r}")
    return str(value)
