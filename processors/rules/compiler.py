"""Rule expressions compiled once into vectorised evaluations over a ``RuleBatch``.

The language is a typed subset of Python expressions, parsed by ``ast.parse`` and accepted
node by node (anything not listed is refused with its position):

- names: features (``FEATURE_NAMES``, numbers), record fields (``batch.TEXT_FIELDS``, text),
  ``p.<param>`` (the rule's parameters), ``lists.<name>`` (reference lists),
  ``blocked.wallets`` / ``blocked.ips`` (the caller's blocklists);
- literals: numbers, 'text', True/False, a tuple or list of texts;
- ``+ - * /`` on numbers (``+`` also joins texts), comparisons (chained too: ``0 <= x < 1``),
  ``in`` / ``not in`` a list or IP ranges, ``and`` / ``or`` / ``not`` on booleans,
  ``a if condition else b``, and calls of ``functions.FUNCTIONS``.

No attribute access but the three namespaces, no subscripts, no other calls, no lambdas or
comprehensions; nothing is ever passed to ``eval``. Each compiled node is a closure; a
subexpression free of parameters is memoised per batch, so rules share ``lower(user_agent)``
or a parsed IP column. Constant subexpressions are folded at compile time.
"""

from __future__ import annotations

import ast
import difflib
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from processors.compute import FEATURE_NAMES
from processors.rules import functions as fn
from processors.rules.batch import BLOCKLISTS, TEXT_FIELDS, RuleBatch, object_column
from processors.rules.functions import BOOL, FUNCTIONS, LIST, NUM, RANGES, TEXT
from processors.rules.lists import IpRanges
from processors.rules.syntax import MAX_DEPTH, ExpressionError, error_at, parse

NAMESPACES = ("p", "lists", "blocked")
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


@dataclass(frozen=True, slots=True)
class Node:
    """A compiled (sub)expression: ``run(batch)`` gives a column or a scalar of ``type``.
    ``const``: the same for every batch (``run(None)`` works); ``pure``: names no parameter."""

    type: str
    run: Callable[[RuleBatch | None], Any]
    const: bool = False
    pure: bool = True


@dataclass(frozen=True, slots=True)
class Scope:
    """What an expression may name besides features and fields."""

    params: Mapping[str, Any]
    lists: Mapping[str, Any]


def compile_expression(text: str, scope: Scope, want: str) -> Node:
    """``text`` compiled against ``scope``; its result must be of type ``want``."""
    tree = parse(text)
    node = Compiler(text, scope).compile(tree)
    if node.type != want:
        raise error_at(tree, text, f"the expression gives a {node.type}, a {want} is needed")
    return node


def param_value(value: Any) -> tuple[str, Any]:
    """The type and runtime value of a parameter (lists become ``TextList``)."""
    if isinstance(value, bool):
        return BOOL, value
    if isinstance(value, int | float):
        return NUM, value
    if isinstance(value, str):
        return TEXT, value
    if isinstance(value, tuple | list) and all(isinstance(v, str) for v in value):
        return LIST, fn.TextList(value)
    raise TypeError(f"unsupported parameter value {value!r}")


def _const(type_: str, value: Any) -> Node:
    return Node(type_, lambda _batch: value, const=True)


class Compiler:
    def __init__(self, text: str, scope: Scope) -> None:
        self.text, self.scope, self.depth = text, scope, 0

    def fail(self, node: ast.AST, message: str, token: str | None = None) -> ExpressionError:
        return error_at(node, self.text, message, token)

    def compile(self, node: ast.expr) -> Node:
        visit = getattr(self, f"visit_{type(node).__name__}", None)
        if visit is None:
            raise self.fail(node, f"{_describe(node)} is not allowed in a rule expression")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(node, f"nested deeper than {MAX_DEPTH} levels")
        try:
            built = visit(node)
        finally:
            self.depth -= 1
        return self._finish(node, built)

    def _finish(self, node: ast.expr, built: Node) -> Node:
        """Fold a constant now; memoise a parameter-free computed node per batch."""
        if built.const and not isinstance(node, ast.Constant | ast.Attribute):
            try:
                with np.errstate(divide="raise", invalid="raise", over="ignore"):
                    value = built.run(None)
            except (ArithmeticError, ValueError) as exc:
                raise self.fail(node, f"cannot be computed: {exc}") from None
            return Node(built.type, lambda _batch: value, const=True, pure=built.pure)
        if built.pure and not built.const and not isinstance(node, ast.Name | ast.Attribute):
            key, run = ast.dump(node), built.run
            return Node(built.type, lambda batch: batch.memo(key, lambda: run(batch)))
        return built

    def expect(self, node: ast.expr, types: tuple[str, ...], what: str) -> Node:
        built = self.compile(node)
        if built.type not in types:
            raise self.fail(node, f"{what} needs a {' or '.join(types)}, this is a {built.type}")
        return built

    # names -------------------------------------------------------------------------------

    def visit_Name(self, node: ast.Name) -> Node:
        name = node.id
        if name in FEATURE_NAMES:
            return Node(NUM, lambda batch: batch.feature(name))
        if name in TEXT_FIELDS:
            return Node(TEXT, lambda batch: batch.field(name))
        if name in NAMESPACES:
            raise self.fail(node, f"'{name}' is a namespace: write {name}.<name>")
        if name in FUNCTIONS:
            raise self.fail(node, f"'{name}' is a function: call it, {name}(...)")
        known = (*FEATURE_NAMES, *TEXT_FIELDS)
        raise self.fail(node, f"unknown name '{name}'{_hint(name, known)}")

    def visit_Attribute(self, node: ast.Attribute) -> Node:
        base = node.value
        if not isinstance(base, ast.Name) or base.id not in NAMESPACES:
            raise self.fail(node, "attribute access is allowed only as p.<param>, "
                                  "lists.<name> or blocked.wallets / blocked.ips")  # fmt: skip
        name = node.attr
        if base.id == "p":
            if name not in self.scope.params:
                declared = ", ".join(sorted(self.scope.params)) or "none"
                hint = _hint(name, self.scope.params)
                raise self.fail(node, f"no parameter '{name}'{hint} (declared: {declared})")
            type_, value = param_value(self.scope.params[name])
            return Node(type_, lambda _batch: value, const=True, pure=False)
        if base.id == "lists":
            if name not in self.scope.lists:
                raise self.fail(node, f"no reference list '{name}'{_hint(name, self.scope.lists)}"
                                      f" (known: {', '.join(sorted(self.scope.lists))})")  # fmt: skip
            value = self.scope.lists[name]
            return _const(RANGES if isinstance(value, IpRanges) else LIST, value)
        if name not in BLOCKLISTS:
            raise self.fail(node, f"no blocklist '{name}' (known: {', '.join(BLOCKLISTS)})")
        return Node(LIST, lambda batch: batch.blocked[name])

    # literals ----------------------------------------------------------------------------

    def visit_Constant(self, node: ast.Constant) -> Node:
        value = node.value
        if isinstance(value, bool):
            return _const(BOOL, value)
        if isinstance(value, int | float):
            return _const(NUM, value)
        if isinstance(value, str):
            return _const(TEXT, value)
        if value is None:
            raise self.fail(node, "None is not a value here: test missing(x)")
        raise self.fail(node, f"{type(value).__name__} literals are not allowed")

    def visit_Tuple(self, node: ast.Tuple | ast.List) -> Node:
        items = []
        for element in node.elts:
            if not isinstance(element, ast.Constant) or not isinstance(element.value, str):
                raise self.fail(element, "a literal list holds only texts, e.g. ('a', 'b')")
            items.append(element.value)
        return _const(LIST, fn.TextList(items))

    visit_List = visit_Tuple

    # operators ---------------------------------------------------------------------------

    def visit_BoolOp(self, node: ast.BoolOp) -> Node:
        word = "and" if isinstance(node.op, ast.And) else "or"
        parts = [self.expect(v, (BOOL,), f"'{word}'") for v in node.values]
        return Node(BOOL, _logical(parts, word == "and"), *_flags(parts))

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Node:
        if isinstance(node.op, ast.Not):
            operand = self.expect(node.operand, (BOOL,), "'not'")
            return Node(BOOL, lambda b: np.logical_not(operand.run(b)), *_flags([operand]))
        if isinstance(node.op, ast.USub | ast.UAdd):
            operand = self.expect(node.operand, (NUM,), "a sign")
            sign = -1 if isinstance(node.op, ast.USub) else 1
            return Node(NUM, lambda b: sign * operand.run(b), *_flags([operand]))
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
            return Node(TEXT, lambda b: fn.concat(left.run(b), right.run(b)), *_flags([left, right]))
        return Node(NUM, lambda b: op(left.run(b), right.run(b)), *_flags([left, right]))

    def visit_Compare(self, node: ast.Compare) -> Node:
        for op in node.ops:
            if isinstance(op, ast.Is | ast.IsNot):
                raise self.fail(node, f"operator '{_SYMBOL[type(op)]}' is not allowed (use == "
                                      "or missing(x))")  # fmt: skip
        left = self.compile(node.left)
        tests = []
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = self.compile(right_node)
            tests.append(self._comparison(node, op, left, right, right_node))
            left = right
        if len(tests) == 1:
            return tests[0]
        return Node(BOOL, _logical(tests, True), *_flags(tests))

    def _comparison(self, node: ast.Compare, op: ast.cmpop, left: Node, right: Node,
                    right_node: ast.expr) -> Node:  # fmt: skip
        flags = _flags([left, right])
        if isinstance(op, ast.In | ast.NotIn):
            test = self._membership(node, left, right, right_node)
            if isinstance(op, ast.NotIn):
                return Node(BOOL, lambda b: np.logical_not(test(b)), *flags)
            return Node(BOOL, test, *flags)
        if type(op) in _ORDER and left.type == right.type == NUM:
            compare = _ORDER[type(op)]
        elif type(op) in _EQUALITY and left.type == right.type and left.type in (NUM, TEXT, BOOL):
            compare = _EQUALITY[type(op)]
        else:
            raise self.fail(node, f"cannot compare a {left.type} with a {right.type} using "
                                  f"'{_SYMBOL[type(op)]}'")  # fmt: skip
        return Node(BOOL, lambda b: compare(left.run(b), right.run(b)), *flags)

    def _membership(self, node: ast.Compare, left: Node, right: Node,
                    right_node: ast.expr) -> Callable[[RuleBatch | None], Any]:  # fmt: skip
        if left.type == TEXT and right.type == LIST:
            return lambda b: fn.isin(left.run(b), right.run(b))
        if left.type == TEXT and right.type == RANGES:
            ips = self._parsed_ips(node.left, left)
            return lambda b: fn.in_cidr(ips.run(b), right.run(b))
        raise self.fail(right_node, f"'in' needs a text on its left and a list or IP ranges on "
                                    f"its right, not a {left.type} and a {right.type}")  # fmt: skip

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

        return Node(body.type, run, *_flags(parts))

    # calls -------------------------------------------------------------------------------

    def visit_Call(self, node: ast.Call) -> Node:
        if not isinstance(node.func, ast.Name):
            self.compile(node.func)  # refuses what is called (a lambda, an attribute) first
            raise self.fail(node.func, "only the listed functions can be called, by name")
        spec = FUNCTIONS.get(node.func.id)
        if spec is None:
            raise self.fail(node.func, f"unknown function '{node.func.id}'"
                                       f"{_hint(node.func.id, FUNCTIONS)} "
                                       f"(known: {', '.join(FUNCTIONS)})")  # fmt: skip
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise self.fail(node, f"{spec.name}() takes positional arguments only")
        count, arity = len(node.args), len(spec.args)
        if count < arity or (count > arity and not spec.variadic):
            more = " or more" if spec.variadic else ""
            plural = "" if arity == 1 and not more else "s"
            raise self.fail(node, f"{spec.name}() takes {arity}{more} argument{plural}, "
                                  f"got {count}")  # fmt: skip
        args = [self._argument(spec, i, a) for i, a in enumerate(node.args)]
        result = spec.result or args[0].type
        impl = spec.impl
        return Node(result, lambda b: impl(*[a.run(b) for a in args]), *_flags(args))

    def _argument(self, spec: fn.Function, index: int, node: ast.expr) -> Node:
        types = spec.args[min(index, len(spec.args) - 1)]
        what = f"argument {index + 1} of {spec.name}()"
        if types == (fn.SPEC,):
            if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
                raise self.fail(node, f"{what} must be a format text such as '.1f'")
            try:
                format(1.0, node.value)
            except ValueError as exc:
                raise self.fail(node, f"bad format '{node.value}': {exc}") from None
            return _const(TEXT, node.value)
        if types == (fn.IP,):
            return self._parsed_ips(node, self.expect(node, (TEXT,), what))
        return self.expect(node, types, what)

    def _parsed_ips(self, node: ast.expr, text: Node) -> Node:
        if not text.pure or text.const:
            return Node(fn.IP, lambda b: fn.ParsedIps(text.run(b)), pure=text.pure)
        key = "ip:" + ast.dump(node)
        return Node(fn.IP, lambda b: b.memo(key, lambda: fn.ParsedIps(text.run(b))))


def _flags(parts: list[Node]) -> tuple[bool, bool]:
    """(const, pure) of a node computed from ``parts``."""
    return all(p.const for p in parts), all(p.pure for p in parts)


def _logical(parts: list[Node], conjunction: bool) -> Callable[[RuleBatch | None], Any]:
    """``and`` / ``or`` over columns, stopping early once every row is decided."""
    combine = np.logical_and if conjunction else np.logical_or

    def run(batch: RuleBatch | None) -> Any:
        acc = parts[0].run(batch)
        for part in parts[1:]:
            decided = not acc.any() if conjunction else acc.all()
            if decided if isinstance(acc, np.ndarray) else (bool(acc) != conjunction):
                return acc
            acc = combine(acc, part.run(batch))
        return acc

    return run


def _texts(value: Any, n: int) -> np.ndarray:
    return value if isinstance(value, np.ndarray) else object_column([value] * n)


def _hint(name: str, known: Any) -> str:
    near = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean '{near[0]}'?)" if near else ""


def _describe(node: ast.AST) -> str:
    names = {"Subscript": "indexing (x[...])", "Lambda": "lambda", "ListComp": "a comprehension",
             "SetComp": "a comprehension", "DictComp": "a comprehension",
             "GeneratorExp": "a generator", "NamedExpr": "assignment (:=)", "Dict": "a dict",
             "Set": "a set literal", "JoinedStr": "an f-string", "Starred": "unpacking (*)",
             "Await": "await", "Yield": "yield", "YieldFrom": "yield", "Slice": "a slice"}
    return names.get(type(node).__name__, f"'{type(node).__name__}'")
