"""Legacy (reference only): a rule as a named, categorised, weighted Python check.

A rule's function takes ``(ctx, params)`` and returns ``None`` (did not fire) or a
``(score, reason)`` pair: score in [0, 1], reason a human sentence with the numbers that
made it fire. ``Rule.check`` wraps that pair into a ``RuleResult``. Rules register
themselves in ``CATALOGUE`` at import time with their default parameters and weight.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from processors.rules.base import (  # noqa: F401 (the rule modules import them from here)
    ACCOUNT_TAKEOVER,
    BEHAVIORAL,
    CATEGORIES,
    IDENTITY,
    NETWORK,
    TICKETING,
    TRANSACTION,
    RuleResult,
)
from processors.rules.lists import ReferenceLists, default_lists

Hit = tuple[float, str]
Params = Mapping[str, Any]
_UNPARSED = object()


class RuleContext:
    """What rules see for one purchase: the record, its features (``FEATURE_NAMES``), the
    blocklists passed in by the caller, and the reference lists (IP ranges, domains)."""

    __slots__ = ("purchase", "features", "blocked_wallets", "blocked_ips", "lists", "_ip")

    def __init__(
        self,
        purchase: Mapping[str, Any],
        features: Mapping[str, float],
        blocked_wallets: Set[str] = frozenset(),
        blocked_ips: Set[str] = frozenset(),
        lists: ReferenceLists | None = None,
    ) -> None:
        self.purchase = purchase
        self.features = features
        self.blocked_wallets = blocked_wallets
        self.blocked_ips = blocked_ips
        self.lists = lists if lists is not None else default_lists()
        self._ip: Any = _UNPARSED

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The purchase's IP address parsed once, or None when it does not parse."""
        if self._ip is _UNPARSED:
            try:
                self._ip = ipaddress.ip_address(self.purchase.get("ip") or "")
            except ValueError:
                self._ip = None
        return self._ip


CheckFn = Callable[[RuleContext, Params], Hit | None]


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    category: str
    weight: float
    params: Params
    fn: CheckFn
    hard: bool = False
    description: str = ""

    def check(self, ctx: RuleContext, params: Params | None = None) -> RuleResult | None:
        hit = self.fn(ctx, self.params if params is None else params)
        if hit is None:
            return None
        return RuleResult(self.id, self.category, hit[0], hit[1], self.hard)


CATALOGUE: dict[str, Rule] = {}


def register(
    rule_id: str, category: str, weight: float, fn: CheckFn, *, hard: bool = False, **params: Any
) -> Rule:
    if rule_id in CATALOGUE:
        raise ValueError(f"rule {rule_id!r} registered twice")
    if category not in CATEGORIES:
        raise ValueError(f"rule {rule_id!r}: unknown category {category!r}")
    doc = " ".join((fn.__doc__ or "").split())
    defaults = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    rule = Rule(rule_id, category, weight, MappingProxyType(defaults), fn, hard, doc)
    CATALOGUE[rule_id] = rule
    return rule


def rule(
    rule_id: str, category: str, weight: float, *, hard: bool = False, **params: Any
) -> Callable[[CheckFn], CheckFn]:
    """Decorator: register ``fn`` as rule ``rule_id`` with default ``params``."""

    def decorate(fn: CheckFn) -> CheckFn:
        register(rule_id, category, weight, fn, hard=hard, **params)
        return fn

    return decorate


def ramp(value: float, limit: float) -> float:
    """0.5 at the limit, rising linearly to 1.0 at twice the limit."""
    if limit <= 0:
        return 1.0
    return min(1.0, 0.5 + 0.5 * (value - limit) / limit)


def at_least(
    rule_id: str, category: str, weight: float, feature: str, param: str, limit: float, what: str
) -> Rule:
    """Register a rule firing when ``features[feature] >= params[param]`` (score: ``ramp``).

    ``what`` describes the value for the reason, e.g. "purchases by this wallet in 1 h".
    """

    def check(ctx: RuleContext, p: Params) -> Hit | None:
        value, threshold = ctx.features[feature], p[param]
        if value >= threshold:
            return ramp(value, threshold), f"{value:g} {what} (threshold {threshold:g})"
        return None

    check.__doc__ = f"{what} at or above {param}"
    return register(rule_id, category, weight, check, **{param: limit})


def within(value: float, limit: float) -> bool:
    """A known (non-negative) value below ``limit``; -1 (missing) never qualifies."""
    return 0 <= value < limit
