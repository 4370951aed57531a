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
or a parsed IP column. Constant subexpressions are folded at compile time. A function of one
text field and constants (``upper(country)``, ``missing(email_domain)``, ``tld(email_domain)
in p.tlds``, ``payment_method == 'CRYPTO'``) is computed once per distinct value of the field
in the batch (``nodes.by_distinct``), the same column as value by value.
"""

from __future__ import annotations

import ast
import difflib
from typing import Any

import numpy as np

from processors.compute import FEATURE_NAMES
from processors.rules import functions as fn
from processors.rules.batch import BLOCKLISTS, TEXT_FIELDS, RuleBatch
from processors.rules.functions import BOOL, FUNCTIONS, LIST, NUM, RANGES, TEXT
from processors.rules.lists import IpRanges
from processors.rules.nodes import Each, Node, Scope, by_distinct, const_node, flags
from processors.rules.operators import Operators
from processors.rules.syntax import MAX_DEPTH, ExpressionError, error_at, parse

__all__ = ["Compiler", "Node", "Scope", "compile_checked", "compile_expression", "param_value"]

NAMESPACES = ("p", "lists", "blocked")


def compile_expression(text: str, scope: Scope, want: str) -> Node:
    """``text`` compiled against ``scope``; its result must be of type ``want``."""
    return compile_checked(text, scope, want)[0]


def compile_checked(text: str, scope: Scope, want: str) -> tuple[Node, ast.expr, Compiler]:
    """``compile_expression``, with the checked tree and its compiler (``built``: each tree
    node's compiled node, which ``program`` translates)."""
    tree = parse(text)
    compiler = Compiler(text, scope)
    node = compiler.compile(tree)
    if node.type != want:
        raise error_at(tree, text, f"the expression gives a {node.type}, a {want} is needed")
    return node, tree, compiler


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


class Compiler(Operators):
    def __init__(self, text: str, scope: Scope) -> None:
        self.text, self.scope, self.depth = text, scope, 0
        self.built: dict[ast.AST, Node] = {}  # each compiled tree node's Node (``program``)

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
        finished = self.built[node] = self._finish(node, built)
        return finished

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

            def memoised(batch: RuleBatch | None) -> Any:
                assert batch is not None  # not constant: never folded, so run on a batch
                return batch.memo(key, lambda: run(batch))

            return Node(built.type, memoised, each=built.each)
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

            def feature(batch: RuleBatch | None) -> np.ndarray:
                assert batch is not None  # a name is not constant: never folded
                return batch.feature(name)

            return Node(NUM, feature)
        if name in TEXT_FIELDS:

            def text_field(batch: RuleBatch | None) -> np.ndarray:
                assert batch is not None  # a name is not constant: never folded
                return batch.field(name)

            return Node(TEXT, text_field, each=Each(name))
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
            return const_node(RANGES if isinstance(value, IpRanges) else LIST, value)
        if name not in BLOCKLISTS:
            raise self.fail(node, f"no blocklist '{name}' (known: {', '.join(BLOCKLISTS)})")

        def blocklist(batch: RuleBatch | None) -> Any:
            assert batch is not None  # the caller's blocklists are not constant: never folded
            return batch.blocked[name]

        return Node(LIST, blocklist)

    # literals ----------------------------------------------------------------------------

    def visit_Constant(self, node: ast.Constant) -> Node:
        value = node.value
        if isinstance(value, bool):
            return const_node(BOOL, value)
        if isinstance(value, int | float):
            return const_node(NUM, value)
        if isinstance(value, str):
            return const_node(TEXT, value)
        if value is None:
            raise self.fail(node, "None is not a value here: test missing(x)")
        raise self.fail(node, f"{type(value).__name__} literals are not allowed")

    def visit_Tuple(self, node: ast.Tuple | ast.List) -> Node:
        items = []
        for element in node.elts:
            if not isinstance(element, ast.Constant) or not isinstance(element.value, str):
                raise self.fail(element, "a literal list holds only texts, e.g. ('a', 'b')")
            items.append(element.value)
        return const_node(LIST, fn.TextList(items))

    visit_List = visit_Tuple

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

        def run(b: RuleBatch | None) -> Any:
            return impl(*[a.run(b) for a in args])

        each = self._each(spec, args)
        if each is not None:
            return by_distinct(result, each, run, pure=all(a.pure for a in args))
        return Node(result, run, *flags(args))

    @staticmethod
    def _each(spec: fn.Function, args: list[Node]) -> Each | None:
        """A function of a text that is a function of one field, the other arguments
        constant: itself a function of that field (``Each``), value by value. ``missing``: of
        a text, what ``functions.missing`` gives for each value of a column."""
        first, rest = args[0], args[1:]
        if first.each is None or first.type != TEXT or not all(a.const for a in rest):
            return None
        if spec.name == "missing":
            return first.each.then(fn.missing_text)
        one = spec.one
        if one is None or spec.args[0] != (TEXT,):  # not a function of texts (valid_ip: IPs)
            return None
        constants = [a.run(None) for a in rest]
        return first.each.then(lambda value: one(value, *constants))

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
            return const_node(TEXT, node.value)
        if types == (fn.IP,):
            return self.parsed_ips(node, self.expect(node, (TEXT,), what))
        return self.expect(node, types, what)

    def parsed_ips(self, node: ast.expr, text: Node) -> Node:
        if not text.pure or text.const:
            return Node(fn.IP, lambda b: fn.ParsedIps(text.run(b)), pure=text.pure)
        key = "ip:" + ast.dump(node)

        def memoised(b: RuleBatch | None) -> fn.ParsedIps:
            assert b is not None  # pure and not constant: never folded, so run on a batch
            return b.memo(key, lambda: fn.ParsedIps(text.run(b)))

        return Node(fn.IP, memoised)


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
