"""Compiled rule expressions: a ``Node`` is a closure over a ``RuleBatch`` with its type."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from processors.rules.batch import RuleBatch, object_column
from processors.rules.functions import BOOL


@dataclass(frozen=True, slots=True)
class Each:
    """A node that is a function of one text field, value by value: ``fn`` of the field's
    value (None: the value itself). Such a node is computed once per distinct value of the
    field in a batch (``by_distinct``)."""

    field: str
    fn: Callable[[Any], Any] | None = None

    def then(self, fn: Callable[[Any], Any]) -> Each:
        """``fn`` applied to this node's value."""
        inner = self.fn
        return Each(self.field, fn if inner is None else lambda v: fn(inner(v)))


@dataclass(frozen=True, slots=True)
class Node:
    """A compiled (sub)expression: ``run(batch)`` gives a column or a scalar of ``type``.
    ``const``: the same for every batch, so the compiler folds it with ``run(None)``; a node
    that reads its batch is never constant and asserts it has one. ``pure``: names no
    parameter. ``each``: set when the node is a function of one text field value by value."""

    type: str
    run: Callable[[RuleBatch | None], Any]
    const: bool = False
    pure: bool = True
    each: Each | None = None


@dataclass(frozen=True, slots=True)
class Scope:
    """What an expression may name besides features and fields."""

    params: Mapping[str, Any]
    lists: Mapping[str, Any]


def const_node(type_: str, value: Any) -> Node:
    return Node(type_, lambda _batch: value, const=True)


def by_distinct(type_: str, each: Each, plain: Callable[[RuleBatch | None], Any],
                pure: bool = True) -> Node:  # fmt: skip
    """A node of ``type_`` (text or boolean) computed by ``each`` once per distinct value of
    its field in the batch (``RuleBatch.distinct``) and spread to the rows: what ``plain``
    computes row by row, in a few calls instead of one per row. ``plain`` runs when the
    field's values cannot be told apart by a dict (an unhashable value)."""
    fn = each.fn
    assert fn is not None  # the field itself is its column

    def run(batch: RuleBatch | None) -> Any:
        assert batch is not None  # it reads a field: never folded
        distinct = batch.distinct(each.field)
        if distinct is None:
            return plain(batch)
        values, rows = distinct
        if type_ == BOOL:
            return np.fromiter(map(fn, values), dtype=bool, count=len(values))[rows]
        return object_column(map(fn, values), len(values))[rows]

    return Node(type_, run, pure=pure, each=each)


def flags(parts: list[Node]) -> tuple[bool, bool]:
    """(const, pure) of a node computed from ``parts``."""
    return all(p.const for p in parts), all(p.pure for p in parts)
