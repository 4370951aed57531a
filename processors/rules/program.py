"""Rules' ``when`` and ``score`` as one native program per ruleset view
(``processors._native.RuleProgram``), evaluated over a whole batch in one call.

A checked expression (``Compiler.built``) is translated node by node into stack operations
over columns: features, numbers, ``+ - * /``, comparisons, ``and or not``, ``a if c else b``,
``min max abs ramp`` and ``missing`` of a number. What reads texts, lists or IP ranges (``ip in
lists.tor_exit``, ``missing(country)``, ``seller_wallet == wallet``) is a *leaf*: the largest
boolean subexpression that does, computed by its compiled column node (``compiler``: once per
distinct text, memoised per batch) and handed to the program as a column. A number the program
cannot hold exactly (an integer past 2**53, a choice between two constants, which numpy keeps
as integers) makes its boolean expression a leaf too, and a score a deferred one.

The program defers a (row, rule) wherever numpy could raise or differ (a value that is not
finite in arithmetic, ``min``, ``max`` or ``ramp``, a division by zero, a leaf that raised):
the engine evaluates that rule on that row by columns, which gives its result or its error.

    program = Program([rule_code(when, score, constant_score) for each active rule])
    rows, scores, starts = program.run(batch, rows)   # see ``RuleProgram.run``
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from processors._native import RuleProgram, TextLeaves
from processors.compute import FEATURE_NAMES
from processors.rules import functions as fn
from processors.rules.batch import FEATURE_INDEX, RuleBatch, field_path
from processors.rules.compiler import Compiler, Scope
from processors.rules.functions import BOOL, NUM, RANGES, TEXT
from processors.rules.lists import IpRanges
from processors.rules.nodes import Each, Node
from processors.rules.syntax import parse
from processors.rules.template import Template
from processors.signals import MISSING

Op = tuple[Any, ...]
_ARITHMETIC = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div"}
_COMPARE = {ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge", ast.Eq: "eq",
            ast.NotEq: "ne"}  # fmt: skip
_EXACT = 2**53


class Unsupported(Exception):  # noqa: N818  (not an error: that part is computed by columns)
    """A node the program does not compute: its boolean expression becomes a leaf."""


@dataclass(frozen=True, slots=True)
class Leaf:
    """A boolean column computed by the compiled ``node``; ``key`` tells equal ones apart."""

    key: str
    node: Node


# Values a program remembers the answers of, per text field (then it starts again).
EACH_CACHE = 20_000


@dataclass(frozen=True, slots=True)
class EachLeaf:
    """A boolean that is a function of one text field, value by value: ``each.fn`` of the
    value. Computed natively per record (``TextLeaves``) as the compiled column node
    gives it (``nodes.by_distinct``, ``functions.isin``, ``in_cidr``, ``ParsedIps``):

    - ``blocklist``: the value's membership in that blocklist of the batch (no ``each.fn``);
    - ``address``: an IPv4 address natively, in ``ranges`` (else valid), another value by
      ``each.fn`` (``functions.in_ranges``, ``parse_ip``);
    - else by ``each.fn``, each text's answers remembered across batches."""

    key: str
    each: Each
    blocklist: str | None = None
    address: bool = False
    ranges: IpRanges | None = None


@dataclass(frozen=True, slots=True)
class PairLeaf:
    """Two texts, each a function of one text field, equal (``different``: unequal) as the
    compiled column node compares them (numpy's elementwise ``==`` / ``!=`` of objects);
    computed natively per record (``TextLeaves``)."""

    key: str
    left: Each
    right: Each
    different: bool


AnyLeaf = Leaf | EachLeaf | PairLeaf
# ``RuleProgram.run``'s answer: rows, scores, spans, field values, unexplained and deferred
# rules
Outcome = tuple[
    list[int], list[float], list[tuple[int, int, int, int]], list[float], list[int], list[int]
]


@dataclass(frozen=True, slots=True)
class RuleCode:
    """A rule's ``when`` and ``score`` as operations (``RuleProgram``), leaves numbered in
    ``leaves``; ``score`` a constant (clipped) or None when the program cannot compute it;
    ``fields``, the operations of each field its reason renders (``Template.rendered``), when
    every one is a number or a boolean the program computes; else (``features`` set) of each
    feature its reason's row functions read (``rowwise``)."""

    when: list[Op]
    score: list[Op] | float | None
    leaves: tuple[AnyLeaf, ...]
    fields: tuple[list[Op], ...] = ()
    features: tuple[int, ...] | None = None


def rule_code(when: Sequence[Any], score: Sequence[Any], constant_score: float | None,
              reason: Template, scope: Scope) -> RuleCode:  # fmt: skip
    """The code of a rule from its checked ``when`` and ``score`` (each (tree, compiler), as
    ``compiler.compile_checked`` gives them after the node) and its reason."""
    leaves: dict[str, tuple[int, AnyLeaf]] = {}
    when_ops = _Translator(when[1], leaves).boolean(when[0])
    score_ops: list[Op] | float | None = constant_score
    if constant_score is None and not score[1].built[score[0]].const:
        try:
            score_ops = _Translator(score[1], leaves).number(score[0])
        except Unsupported:
            score_ops = None
    fields, features = _fields(reason, scope, leaves)
    ordered = sorted(leaves.values(), key=lambda pair: pair[0])
    return RuleCode(when_ops, score_ops, tuple(leaf for _, leaf in ordered), fields, features)


def _fields(reason: Template, scope: Scope, leaves: dict[str, tuple[int, AnyLeaf]]
            ) -> tuple[tuple[list[Op], ...], tuple[int, ...] | None]:  # fmt: skip
    """The code of each field of ``reason`` (numbers and booleans; None for the features);
    else, for its row functions (``rowwise``), the code of each feature its fields read and
    those features."""
    out = []
    for part in reason.rendered:
        if isinstance(part, str):
            continue
        tree = parse(part.expression)
        compiler = Compiler(part.expression, scope)
        compiler.compile(tree)
        translator = _Translator(compiler, leaves)
        try:
            if part.node.type not in (NUM, BOOL):
                raise Unsupported
            out.append(translator.number(tree) if part.node.type == NUM
                       else translator.boolean(tree))  # fmt: skip
        except Unsupported:
            read = {FEATURE_INDEX[node.id] for field in reason.parts if not isinstance(field, str)
                    for node in ast.walk(parse(field.expression))
                    if isinstance(node, ast.Name) and node.id in FEATURE_INDEX}  # fmt: skip
            features = tuple(sorted(read))
            return tuple([("feature", j)] for j in features), features
    return tuple(out), None


class _Translator:
    def __init__(self, compiler: Compiler, leaves: dict[str, tuple[int, AnyLeaf]]) -> None:
        self.compiler, self.built, self.leaves = compiler, compiler.built, leaves

    def leaf(self, node: ast.expr, built: Node) -> list[Op]:
        """``node`` as a leaf: value by value when it is a function of one text field."""
        key = f"pure {ast.dump(node)}" if built.pure else f"node {id(built)}"
        if key not in self.leaves:
            self.leaves[key] = (len(self.leaves), self._each(key, node, built) or Leaf(key, built))
        return [("leaf", self.leaves[key][0])]

    def _each(self, key: str, node: ast.expr, built: Node) -> EachLeaf | PairLeaf | None:
        """An ``EachLeaf`` of ``node``: a compiled function of one field (``by_distinct``), a
        field's IP in constant ranges or ``valid_ip`` of it (``functions.in_ranges`` and
        ``parse_ip``, what ``in_cidr`` and ``ParsedIps`` give a value), or a field in a
        blocklist; None for anything else."""
        if built.each is not None and built.each.fn is not None:
            return EachLeaf(key, built.each)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id == "valid_ip":  # fmt: skip
            each = self.built[node.args[0]].each
            if each is not None:
                valid = each.then(lambda v: fn.parse_ip(v)[0])
                return EachLeaf(key, valid, address=each.fn is None)
        if isinstance(node, ast.Compare) and len(node.ops) == 1 \
                and isinstance(node.ops[0], ast.Eq | ast.NotEq):  # fmt: skip
            left, right = self.built[node.left], self.built[node.comparators[0]]
            if left.type == right.type == TEXT and left.each and right.each:
                return PairLeaf(key, left.each, right.each, isinstance(node.ops[0], ast.NotEq))
        if isinstance(node, ast.Compare) and len(node.ops) == 1 \
                and isinstance(node.ops[0], ast.In):  # fmt: skip
            left, right = self.built[node.left], self.built[node.comparators[0]]
            if left.each is None or left.type != TEXT:
                return None
            if right.type == RANGES and right.const:
                ranges = right.run(None)
                inside = left.each.then(lambda v: fn.in_ranges(v, ranges))
                field = left.each.fn is None
                return EachLeaf(key, inside, address=field, ranges=ranges if field else None)
            target = node.comparators[0]
            if left.each.fn is None and isinstance(target, ast.Attribute) \
                    and isinstance(target.value, ast.Name) and target.value.id == "blocked":  # fmt: skip
                return EachLeaf(key, left.each, blocklist=target.attr)
        return None

    def boolean(self, node: ast.expr) -> list[Op]:
        """A boolean node: computed by the program, else a leaf."""
        try:
            return self.native(node)
        except Unsupported:
            return self.leaf(node, self.built[node])

    def number(self, node: ast.expr) -> list[Op]:
        """A number node: computed by the program, else Unsupported."""
        return self.native(node)

    def native(self, node: ast.expr) -> list[Op]:
        built = self.built[node]
        if built.const:
            return [("const", _constant(built))]
        visit = getattr(self, f"visit_{type(node).__name__}", None)
        if visit is None:
            raise Unsupported
        return visit(node, built)

    def visit_Name(self, node: ast.Name, built: Node) -> list[Op]:  # noqa: N802
        if built.type != NUM:  # a text field
            raise Unsupported
        return [("feature", FEATURE_INDEX[node.id])]

    def visit_BoolOp(self, node: ast.BoolOp, built: Node) -> list[Op]:  # noqa: N802
        word = "and" if isinstance(node.op, ast.And) else "or"
        return _folded([self.boolean(v) for v in node.values], word)

    def visit_UnaryOp(self, node: ast.UnaryOp, built: Node) -> list[Op]:  # noqa: N802
        if isinstance(node.op, ast.Not):
            return [*self.boolean(node.operand), ("not",)]
        operand = self.number(node.operand)
        return [*operand, ("neg",)] if isinstance(node.op, ast.USub) else operand  # 1 * x is x

    def visit_BinOp(self, node: ast.BinOp, built: Node) -> list[Op]:  # noqa: N802
        if built.type != NUM:  # texts joined
            raise Unsupported
        op = _ARITHMETIC[type(node.op)]
        return [*self.number(node.left), *self.number(node.right), (op,)]

    def visit_Compare(self, node: ast.Compare, built: Node) -> list[Op]:  # noqa: N802
        tests, left = [], node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            tests.append(self._comparison(node, op, left, right))
            left = right
        return _folded(tests, "and")

    def _comparison(self, node: ast.Compare, op: ast.cmpop, left: ast.expr,
                    right: ast.expr) -> list[Op]:  # fmt: skip
        a, b = self.built[left], self.built[right]
        name = _COMPARE.get(type(op))
        try:
            if name is None or a.type not in (NUM, BOOL) or a.type != b.type:
                raise Unsupported  # in / not in, texts
            read = self.number if a.type == NUM else self.boolean
            return [*read(left), *read(right), (name,)]
        except Unsupported:
            if len(node.ops) == 1:
                return self.leaf(node, self.built[node])
            one = ast.Compare(left, [op], [right])  # this comparison of the chain alone
            return self.leaf(one, self.compiler._comparison(node, op, a, b))

    def visit_IfExp(self, node: ast.IfExp, built: Node) -> list[Op]:  # noqa: N802
        if built.type == NUM:
            if self.built[node.body].const and self.built[node.orelse].const:
                raise Unsupported  # numpy's choice between two constants keeps their type
            sides = [*self.number(node.body), *self.number(node.orelse)]
        elif built.type == BOOL:
            sides = [*self.boolean(node.body), *self.boolean(node.orelse)]
        else:
            raise Unsupported
        return [*self.boolean(node.test), *sides, ("select",)]

    def visit_Call(self, node: ast.Call, built: Node) -> list[Op]:  # noqa: N802
        assert isinstance(node.func, ast.Name)
        name = node.func.id
        if name in ("min", "max"):
            return [*(op for a in node.args for op in self.number(a)), (name, len(node.args))]
        if name in ("abs", "ramp"):
            return [*(op for a in node.args for op in self.number(a)), (name,)]
        if name == "missing" and self.built[node.args[0]].type == NUM:
            return [*self.number(node.args[0]), ("missing", float(MISSING))]
        raise Unsupported  # a function of texts


def _folded(parts: list[list[Op]], word: str) -> list[Op]:
    out = list(parts[0])
    for part in parts[1:]:
        out += [*part, (word,)]
    return out


def _constant(built: Node) -> float:
    """A constant number or boolean as the float64 numpy makes of it next to a column."""
    value = built.run(None)
    if isinstance(value, bool | np.bool_):
        return 1.0 if value else 0.0
    if isinstance(value, float | np.floating):
        return float(value)
    if isinstance(value, int | np.integer) and -_EXACT <= value <= _EXACT:
        return float(value)
    raise Unsupported  # a text, a list, or an integer a float64 does not hold exactly


class Program:
    """The active rules of a view as one ``RuleProgram``, with their leaves (equal ones
    computed once)."""

    def __init__(self, codes: Sequence[RuleCode]) -> None:
        keys: dict[str, int] = {}
        self.leaves: list[AnyLeaf] = []
        rules = []
        for code in codes:
            number = []
            for leaf in code.leaves:
                if leaf.key not in keys:
                    keys[leaf.key] = len(self.leaves)
                    self.leaves.append(leaf)
                number.append(keys[leaf.key])
            fields = [_renumbered(ops, number) for ops in code.fields]
            rules.append((_renumbered(code.when, number), _renumbered(code.score, number), fields))
        self.native = RuleProgram(len(FEATURE_NAMES), len(self.leaves), rules)
        # how the leaves are computed: by their column nodes, or natively (``TextLeaves``)
        self._columns = [(k, leaf.node) for k, leaf in enumerate(self.leaves)
                         if isinstance(leaf, Leaf)]  # fmt: skip
        self._fields, self._members, self._texts = _text_leaves(self.leaves)
        self._paths = [field_path(name) for name in self._fields]

    def run(self, batch: RuleBatch, rows: list[int] | None) -> Outcome:
        """``RuleProgram.run`` over ``rows`` of ``batch`` (None: all), in the caller's error
        state (the leaves' column nodes run under it)."""
        return self.native.run(batch.columns(), self._leaves(batch), rows)

    def _leaves(self, batch: RuleBatch) -> np.ndarray:
        """Each leaf over the batch, 0 or 1, or 2 where it is deferred: a row an
        ``EachLeaf`` defers, every row where a column leaf raises (each row is then
        evaluated by columns, where the rule's error is the row's own)."""
        n = batch.n
        out = np.empty((len(self.leaves), n), dtype=np.uint8)
        for k, node in self._columns:
            try:
                out[k] = np.broadcast_to(np.asarray(node.run(batch), dtype=bool), (n,))
            except Exception:  # noqa: BLE001  (deferred: evaluated by columns, row by row)
                out[k] = 2
        if self._fields:
            members: list[tuple[int, int, Any, bool]] = []
            for k, column, name in self._members:
                collection = batch.blocked[name]
                held = collection.members if isinstance(collection, fn.TextList) else collection
                members.append((k, column, held, None in held or "" in held))
            records = batch.records
            if type(records) is list:  # plain dicts: read natively, no column made
                try:
                    self._texts.fill_records(out, records, self._paths, members)
                    return out
                except ValueError:  # a record that is not a dict: by the columns, below
                    pass
            columns = [batch.field(name).tolist() for name in self._fields]
            self._texts.fill(out, columns, members)
        return out


def _text_leaves(leaves: list[AnyLeaf]) -> tuple[dict[str, int], list[tuple[int, int, str]],
                                                 TextLeaves]:  # fmt: skip
    """The text fields the leaves read (each one's column), the blocklist leaves (leaf,
    column, blocklist) and the ``TextLeaves`` of the others: per field, the functions of its
    value (answers remembered per value), the addresses, the pairs of texts."""
    fields: dict[str, int] = {}
    functions: dict[str, list[tuple[int, Any]]] = {}
    members: list[tuple[int, int, str]] = []
    addresses: list[tuple[int, int, list[int] | None, Any]] = []
    pairs: list[tuple[int, Any, Any, bool]] = []
    for k, leaf in enumerate(leaves):
        if isinstance(leaf, PairLeaf):
            sides: list[tuple[int, Any, dict[Any, Any]]] = [
                (fields.setdefault(e.field, len(fields)), e.fn, {}) for e in (leaf.left, leaf.right)
            ]
            pairs.append((k, sides[0], sides[1], leaf.different))
        if not isinstance(leaf, EachLeaf):
            continue
        column = fields.setdefault(leaf.each.field, len(fields))
        if leaf.blocklist is not None:
            members.append((k, column, leaf.blocklist))
        elif leaf.address:
            bounds = None if leaf.ranges is None else leaf.ranges.bounds_v4().tolist()
            addresses.append((k, column, bounds, leaf.each.fn))
        else:
            functions.setdefault(leaf.each.field, []).append((k, leaf.each.fn))
    groups: list[tuple[int, dict[Any, bytes], list[tuple[int, Any]]]] = [
        (fields[name], {}, each) for name, each in functions.items()
    ]
    texts = TextLeaves(len(leaves), len(fields), groups, addresses, pairs, EACH_CACHE)
    return fields, members, texts


def _renumbered(ops: Any, number: list[int]) -> Any:
    if not isinstance(ops, list):
        return ops
    return [("leaf", number[op[1]]) if op[0] == "leaf" else op for op in ops]
