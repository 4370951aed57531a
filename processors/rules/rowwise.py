"""Rules' reasons over a few rows: each reason field compiled a second time, into a Python
function of one purchase.

Why: a reason rendered by columns (``template.Template.render``) costs ~20-35 µs of numpy
calls per rule however few the rows that fired. For a rule that fired on up to
``engine.FEW_FIRED`` rows, ``engine`` renders its reason row by row with these functions
instead, with the same texts: ``tests/unit/test_rules_rowwise.py`` compares the two over
simulated traffic and over special values (NaN, infinities, -0.0, missing texts, bad IPs,
failing expressions). Whether a rule fires and its score are the native program's
(``program``).

How: ``Compiler`` checks and types the expression as usual; its tree is then translated node
by node into a Python expression of three arguments, ``f`` (the purchase's features it reads,
by their ``FEATURE_NAMES`` index, as the native program gives them), ``r`` (its record) and ``b`` (the blocklists), and compiled into a
function with no builtins. The generated code names only those arguments, the folded constants
(parameters, reference lists, constant subexpressions, bound by value) and the helpers below;
nothing of the rule's text reaches it but through the checked tree.

Same answers: the scalar operations are IEEE doubles like numpy's; ``and`` / ``or`` stop
early, as the vectorised path does for a row alone; ``a if c else b`` computes both sides, as
the vectorised one does. Where numpy would raise or could differ (a division by zero, a
non-finite operand of arithmetic, ``ramp``, ``min``, ``max``) a helper raises ``Defer`` and
the engine renders that rule's reasons by columns, so errors read as they always did.
"""

from __future__ import annotations

import ast
import itertools
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import reduce
from types import CodeType, FunctionType
from typing import Any

import numpy as np

from processors.rules import functions as fn
from processors.rules.batch import FEATURE_INDEX, TEXT_FIELDS, country_of
from processors.rules.compiler import Compiler
from processors.rules.functions import LIST, NUM, RANGES, TEXT
from processors.rules.nodes import Node, Scope
from processors.rules.syntax import parse

RowFunction = Callable[[Mapping[int, float], Mapping[str, Any], Mapping[str, Any]], Any]


class Defer(Exception):  # noqa: N818  (not an error: a hand-over to the vectorised path)
    """The scalar evaluation could differ from numpy's here: evaluate this row vectorised."""


# helpers the generated code calls -------------------------------------------------------

_INF = math.inf


def _arithmetic(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def run(a: Any, b: Any) -> Any:
        # inf - inf or 0 * inf: numpy raises "invalid", Python need not; NaN fails the test
        if -_INF < a < _INF and -_INF < b < _INF:
            return op(a, b)
        raise Defer

    return run


def _divide(a: Any, b: Any) -> Any:
    if b and -_INF < a < _INF and -_INF < b < _INF:
        return a / b
    raise Defer  # by zero, or not finite: numpy's own result or error, and its message


def _ramp(value: Any, limit: Any) -> float:
    """``functions.ramp`` on finite numbers: 0.5 at the limit, 1.0 at twice the limit."""
    if -_INF < value < _INF and -_INF < limit < _INF:
        return min(1.0, 0.5 + 0.5 * (value - limit) / limit) if limit > 0 else 1.0
    raise Defer


def _extreme(ufunc: np.ufunc) -> Callable[..., Any]:
    def run(*values: Any) -> Any:
        if all(-_INF < v < _INF for v in values):
            return reduce(ufunc, values)  # numpy's own choice between 0.0 and -0.0
        raise Defer

    return run


def _choose(condition: Any, yes: Any, no: Any) -> Any:
    return yes if condition else no


# Each function of ``functions.FUNCTIONS`` on single values: its ``one`` form, else its own
# scalar branch; but where numpy could raise or round differently, a helper that defers.
_OVERRIDES: dict[str, Callable[..., Any]] = {
    "min": _extreme(np.minimum), "max": _extreme(np.maximum), "ramp": _ramp,
}  # fmt: skip
HELPERS: dict[str, Any] = {
    "_add": _arithmetic(operator.add), "_sub": _arithmetic(operator.sub),
    "_mul": _arithmetic(operator.mul), "_div": _divide, "_concat": fn.concat,
    "_isin": fn.isin, "_in_ranges": fn.in_ranges, "_country": country_of, "_choose": _choose,
    "_missing_number": fn.missing_number,
    **{f"_fn_{name}": _OVERRIDES.get(name) or spec.one or spec.impl
       for name, spec in fn.FUNCTIONS.items()},
}  # fmt: skip
_ARITHMETIC = {ast.Add: "_add", ast.Sub: "_sub", ast.Mult: "_mul", ast.Div: "_div"}


def _call(name: str, *args: ast.expr) -> ast.Call:
    return ast.Call(func=ast.Name(name, ast.Load()), args=list(args), keywords=[])


class _Translator:
    """A checked expression tree (with ``Compiler.built``) as a Python expression tree."""

    def __init__(self, built: Mapping[ast.AST, Node]) -> None:
        self.built = built
        self.constants: dict[str, Any] = {}

    def constant(self, value: Any) -> ast.expr:
        name = f"_k{next(_NAMES)}"  # unique in the process
        self.constants[name] = value
        return ast.Name(name, ast.Load())

    def emit(self, node: ast.expr) -> ast.expr:
        built = self.built[node]
        if built.const:  # a parameter, a list or a folded subexpression: its value
            return self.constant(built.run(None))
        visit = getattr(self, f"emit_{type(node).__name__}")
        return visit(node, built)

    def emit_Name(self, node: ast.Name, built: Node) -> ast.expr:  # noqa: N802
        if node.id in FEATURE_INDEX:
            return ast.Subscript(ast.Name("f", ast.Load()), ast.Constant(FEATURE_INDEX[node.id]),
                                 ast.Load())  # fmt: skip
        assert node.id in TEXT_FIELDS
        if node.id == "country":
            return _call("_country", ast.Name("r", ast.Load()))
        get = ast.Attribute(ast.Name("r", ast.Load()), "get", ast.Load())
        return ast.Call(func=get, args=[ast.Constant(node.id)], keywords=[])

    def emit_Attribute(self, node: ast.Attribute, built: Node) -> ast.expr:  # noqa: N802
        # p.<param> and lists.<name> are constants; what is left is blocked.<name>
        return ast.Subscript(ast.Name("b", ast.Load()), ast.Constant(node.attr), ast.Load())

    def emit_BoolOp(self, node: ast.BoolOp, built: Node) -> ast.expr:  # noqa: N802
        return ast.BoolOp(node.op, [self.emit(v) for v in node.values])

    def emit_UnaryOp(self, node: ast.UnaryOp, built: Node) -> ast.expr:  # noqa: N802
        operand = self.emit(node.operand)
        if isinstance(node.op, ast.Not):
            return ast.UnaryOp(ast.Not(), operand)
        sign = -1 if isinstance(node.op, ast.USub) else 1  # as the vectorised: sign * value
        return ast.BinOp(ast.Constant(sign), ast.Mult(), operand)

    def emit_BinOp(self, node: ast.BinOp, built: Node) -> ast.expr:  # noqa: N802
        left, right = self.emit(node.left), self.emit(node.right)
        if built.type == TEXT:
            return _call("_concat", left, right)
        return _call(_ARITHMETIC[type(node.op)], left, right)

    def emit_Compare(self, node: ast.Compare, built: Node) -> ast.expr:  # noqa: N802
        tests, left = [], node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            tests.append(self._comparison(op, left, right))
            left = right
        return tests[0] if len(tests) == 1 else ast.BoolOp(ast.And(), tests)

    def _comparison(self, op: ast.cmpop, left: ast.expr, right: ast.expr) -> ast.expr:
        a, b = self.emit(left), self.emit(right)
        if isinstance(op, ast.In | ast.NotIn):
            kind = self.built[right].type
            assert kind in (LIST, RANGES)
            if kind == LIST and self.built[right].const:
                members = self.built[right].run(None)  # a constant list: test its set
                b = self.constant(members.members if isinstance(members, fn.TextList)
                                  else members)  # fmt: skip
            test = _call("_isin" if kind == LIST else "_in_ranges", a, b)
            return ast.UnaryOp(ast.Not(), test) if isinstance(op, ast.NotIn) else test
        return ast.Compare(a, [op], [b])

    def emit_IfExp(self, node: ast.IfExp, built: Node) -> ast.expr:  # noqa: N802
        # both sides computed, as the vectorised path does (an error in either one counts)
        return _call("_choose", self.emit(node.test), self.emit(node.body),
                     self.emit(node.orelse))  # fmt: skip

    def emit_Call(self, node: ast.Call, built: Node) -> ast.expr:  # noqa: N802
        assert isinstance(node.func, ast.Name)
        if node.func.id == "missing":  # by the argument's type: no type tests per row
            value = self.emit(node.args[0])
            if self.built[node.args[0]].type == NUM:
                return _call("_missing_number", value)
            return ast.UnaryOp(ast.Not(), value)  # a text: None or ''
        args = [self.emit(a) if a in self.built else self.constant(_literal(a))
                for a in node.args]  # a format spec is a literal the compiler did not visit
        return _call(f"_fn_{node.func.id}", *args)


def _literal(node: ast.expr) -> Any:
    assert isinstance(node, ast.Constant)
    return node.value


_NAMES = itertools.count()


@dataclass(frozen=True, slots=True)
class RowExpression:
    """An expression as a function of one row, with its generated tree and constants."""

    run: RowFunction
    body: ast.expr
    constants: Mapping[str, Any]


def row_function(text: str, scope: Scope, name: str = "expression") -> RowExpression:
    """``text`` (an expression ``Compiler`` accepts) as a function ``(f, r, b)`` of one row."""
    tree = parse(text)
    compiler = Compiler(text, scope)
    compiler.compile(tree)
    translator = _Translator(compiler.built)
    body = translator.emit(tree)
    return RowExpression(_function(body, translator.constants, name), body,
                         translator.constants)  # fmt: skip


def _function(body: ast.expr, constants: Mapping[str, Any], name: str) -> RowFunction:
    arguments = ast.arguments(posonlyargs=[], args=[ast.arg("f"), ast.arg("r"), ast.arg("b")],
                              kwonlyargs=[], kw_defaults=[], defaults=[])  # fmt: skip
    lambda_ = ast.Expression(ast.Lambda(arguments, body))
    code = compile(ast.fix_missing_locations(lambda_), f"<rule {name}>", "eval")
    # the lambda's own code, made a function here: nothing is evaluated to build it
    function_code = next(c for c in code.co_consts if isinstance(c, CodeType))
    namespace = {"__builtins__": {}, **HELPERS, **constants}
    return FunctionType(function_code, namespace, name)


@dataclass(frozen=True, slots=True)
class RowField:
    value: RowExpression
    const: bool
    conversion: str | None
    spec: str


@dataclass(frozen=True, slots=True)
class RowReason:
    """A rule's reason template, its fields as functions of one row."""

    parts: tuple[str | RowField, ...]

    def reason(self, f: Mapping[int, float], r: Mapping[str, Any], b: Mapping[str, Any]) -> str:
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = part.value.run(f, r, b)
            if not part.const and isinstance(value, np.generic):
                value = value.item()  # what the vectorised column's tolist() gives
            if part.conversion == "r":
                value = repr(value)
            elif part.conversion == "s":
                value = str(value)
            out.append(format(value, part.spec))
        return "".join(out)


def row_reason(rule_id: str, reason_fields: list[Any], scope: Scope) -> RowReason:
    """``reason_fields``: the template's parts (``Template.parts``), literals and fields."""
    parts: list[str | RowField] = []
    for part in reason_fields:
        if isinstance(part, str):
            parts.append(part)
        else:
            parts.append(RowField(row_function(part.expression, scope, f"{rule_id}.reason"),
                                  part.node.const, part.conversion, part.spec))  # fmt: skip
    return RowReason(tuple(parts))


__all__ = ["HELPERS", "Defer", "RowExpression", "RowField", "RowReason", "row_function",
           "row_reason"]
