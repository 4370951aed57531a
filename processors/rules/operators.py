"""The operators of rule expressions (``and or not``, arithmetic, comparisons, ``in``,
``a if c else b``), compiled into vectorised closures; a part of ``compiler.Compiler``."""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from processors.rules import functions as fn
from processors.rules.batch import RuleBatch, object_column
from processors.rules.functions import BOOL, LIST, NUM, RANGES, TEXT
from processors.rules.nodes import Node, by_distinct, flags
from processors.rules.syntax import ExpressionError

_ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
               ast.Div: operator.truediv}  # fmt: skip
_ORDER = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}
_EQUALITY = {ast.Eq: operator.eq, ast.NotEq: operator.ne}
_SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Mod: "%",
           ast.FloorDiv: "//", ast.Pow: "**", ast.MatMult: "@", ast.BitAnd: "&",
           ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>",
           ast.Is: "is", ast.IsNot: "is not", ast.Invert: "~", ast.Eq: "==", ast.NotEq: "!=",
           ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.In: "in",
           ast.NotIn: "not in"}  # fmt: skip


class Operators:
    """The operator visitors of ``Compiler`` (which provides ``compile``, ``expect``,
    ``fail`` and ``parsed_ips``)."""

    compile: Callable[[ast.expr], Node]
    expect: Callable[[ast.expr, tuple[str, ...], str], Node]
    fail: Callable[..., ExpressionError]
    parsed_ips: Callable[[ast.expr, Node], Node]

    def visit_BoolOp(self, node: ast.BoolOp) -> Node:
        word = "and" if isinstance(node.op, ast.And) else "or"
        parts = [self.expect(v, (BOOL,), f"'{word}'") for v in node.values]
        return Node(BOOL, _logical(parts, word == "and"), *flags(parts))

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Node:
        if isinstance(node.op, ast.Not):
            operand = self.expect(node.operand, (BOOL,), "'not'")
            return Node(BOOL, lambda b: np.logical_not(operand.run(b)), *flags([operand]))
        if isinstance(node.op, ast.USub | ast.UAdd):
            operand = self.expect(node.operand, (NUM,), "a sign")
            sign = -1 if isinstance(node.op, ast.USub) else 1
            return Node(NUM, lambda b: sign * operand.run(b), *flags([operand]))
        raise self.fail(node, f"operator '{_SYMBOL.get(type(node.op), '?')}' is not allowed")

    def visit_BinOp(self, node: ast.BinOp) -> Node:
        op = _ARITHMETIC.get(type(node.op))
        if op is None:
            raise self.fail(node, f"operator '{_SYMBOL.get(type(node.op), '?')}' is not allowed"
                                  " (use + - * /)")  # fmt: skip
        left = self.expect(node.left, (NUM, TEXT), "arithmetic")
        right = self.expect(node.right, (left.type,), f"'{_SYMBOL[type(node.op)]}' with a "
                                                       f"{left.type} on its left")  # fmt: skip
        if left.type == TEXT:
            if not isinstance(node.op, ast.Add):
                raise self.fail(node, "texts can only be joined with +")
            return Node(TEXT, lambda b: fn.concat(left.run(b), right.run(b)), *flags([left, right]))
        return Node(NUM, lambda b: op(left.run(b), right.run(b)), *flags([left, right]))

    def visit_Compare(self, node: ast.Compare) -> Node:
        for op in node.ops:
            if isinstance(op, ast.Is | ast.IsNot):
                raise self.fail(node, f"operator '{_SYMBOL[type(op)]}' is not allowed (use == "
                                      "or missing(x))")  # fmt: skip
        left = self.compile(node.left)
        tests = []
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = self.compile(right_node)
            tests.append(self._comparison(node, op, left, right))
            left = right
        if len(tests) == 1:
            return tests[0]
        return Node(BOOL, _logical(tests, True), *flags(tests))

    def _comparison(self, node: ast.Compare, op: ast.cmpop, left: Node, right: Node) -> Node:
        both = flags([left, right])
        if isinstance(op, ast.In | ast.NotIn):
            test = self._membership(node, left, right)
            if isinstance(op, ast.NotIn):
                return Node(BOOL, lambda b: np.logical_not(test(b)), *both)
            if left.each is not None and left.type == TEXT and right.type == LIST and right.const:
                return by_distinct(BOOL, left.each.then(fn.in_collection(right.run(None))), test,
                                   both[1])  # fmt: skip
            return Node(BOOL, test, *both)
        if type(op) in _ORDER and left.type == right.type == NUM:
            compare = _ORDER[type(op)]
        elif type(op) in _EQUALITY and left.type == right.type and left.type in (NUM, TEXT, BOOL):
            compare = _EQUALITY[type(op)]
        else:
            raise self.fail(node, f"cannot compare a {left.type} with a {right.type} using "
                                  f"'{_SYMBOL[type(op)]}'")  # fmt: skip

        left_run, right_run = _operand(left), _operand(right)

        def run(b: RuleBatch | None) -> Any:
            return compare(left_run(b), right_run(b))

        if left.type == TEXT and compare in (operator.eq, operator.ne):  # a text and a constant
            if left.each is not None and right.const:
                text = right.run(None)
                return by_distinct(BOOL, left.each.then(lambda v: bool(compare(v, text))), run,
                                   both[1])  # fmt: skip
            if right.each is not None and left.const:
                text = left.run(None)
                return by_distinct(BOOL, right.each.then(lambda v: bool(compare(text, v))), run,
                                   both[1])  # fmt: skip
        return Node(BOOL, run, *both)

    def _membership(self, node: ast.Compare, left: Node,
                    right: Node) -> Callable[[RuleBatch | None], Any]:  # fmt: skip
        if left.type == TEXT and right.type == LIST:
            return lambda b: fn.isin(left.run(b), right.run(b))
        if left.type == TEXT and right.type == RANGES:
            ips = self.parsed_ips(node.left, left)
            return lambda b: fn.in_cidr(ips.run(b), right.run(b))
        raise self.fail(node, f"'in' needs a text on its left and a list or IP ranges on its "
                              f"right, not a {left.type} and a {right.type}")  # fmt: skip

    def visit_IfExp(self, node: ast.IfExp) -> Node:
        test = self.expect(node.test, (BOOL,), "the condition of 'if'")
        body = self.expect(node.body, (NUM, TEXT, BOOL), "'if'")
        orelse = self.expect(node.orelse, (body.type,), f"'else' after a {body.type}")
        parts = [test, body, orelse]

        def run(batch: RuleBatch | None) -> Any:
            cond, yes, no = test.run(batch), body.run(batch), orelse.run(batch)
            if not any(isinstance(v, np.ndarray) for v in (cond, yes, no)):
                return yes if cond else no
            if body.type == TEXT:
                n = max(len(v) for v in (cond, yes, no) if isinstance(v, np.ndarray))
                yes, no = _texts(yes, n), _texts(no, n)
            return np.where(cond, yes, no)

        return Node(body.type, run, *flags(parts))


def _operand(node: Node) -> Callable[[RuleBatch | None], Any]:
    """A compared node's ``run``; a constant integer number as the float it equals: numpy
    compares a float64 column with an int by converting it to float64 first (~0.35 µs a
    comparison), and Python compares numbers exactly, so the answers are the same."""
    if node.type == NUM and node.const:
        value = node.run(None)
        if type(value) is int and -(2**53) <= value <= 2**53:  # exactly a float
            number = float(value)
            return lambda _batch: number
    return node.run


def _logical(parts: list[Node], conjunction: bool) -> Callable[[RuleBatch | None], Any]:
    """``and`` / ``or`` over columns, stopping early once every row is decided."""
    combine = np.logical_and if conjunction else np.logical_or

    def run(batch: RuleBatch | None) -> Any:
        acc = parts[0].run(batch)
        for part in parts[1:]:
            if isinstance(acc, np.ndarray):
                true = np.count_nonzero(acc)  # what any() and all() need, faster on few rows
                decided = true == 0 if conjunction else true == acc.size
            else:
                decided = bool(acc) != conjunction
            if decided:
                return acc
            acc = combine(acc, part.run(batch))
        return acc

    return run


def _texts(value: Any, n: int) -> np.ndarray:
    return value if isinstance(value, np.ndarray) else object_column([value] * n)
