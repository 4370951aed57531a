"""Compiled rule expressions: a ``Node`` is a closure over a ``RuleBatch`` with its type."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from processors.rules.batch import RuleBatch


@dataclass(frozen=True, slots=True)
class Node:
    """A compiled (sub)expression: ``run(batch)`` gives a column or a scalar of ``type``.
    ``const``: the same for every batch, so the compiler folds it with ``run(None)``; a node
    that reads its batch is never constant and asserts it has one. ``pure``: names no
    parameter."""

    type: str
    run: Callable[[RuleBatch | None], Any]
    const: bool = False
    pure: bool = True


@dataclass(frozen=True, slots=True)
class Scope:
    """What an expression may name besides features and fields."""

    params: Mapping[str, Any]
    lists: Mapping[str, Any]


def const_node(type_: str, value: Any) -> Node:
    return Node(type_, lambda _batch: value, const=True)


def flags(parts: list[Node]) -> tuple[bool, bool]:
    """(const, pure) of a node computed from ``parts``."""
    return all(p.const for p in parts), all(p.pure for p in parts)
