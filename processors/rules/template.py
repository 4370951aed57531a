"""Reason templates: text with ``{expression}`` fields, each with an optional ``!r`` / ``!s``
conversion and a Python format spec, as in ``str.format``:

    "{velocity_1h:g} purchases in 1 h (threshold {p.max_purchases:g})"

A field is a rule expression (``compiler``), so it may compute: ``{account_age_days * 24:.1f}``.
``{{`` and ``}}`` are literal braces. Rendered only for the rows where the rule fired.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np

from processors.rules.batch import RuleBatch
from processors.rules.compiler import Compiler, Node, Scope
from processors.rules.functions import BOOL, NUM, TEXT
from processors.rules.syntax import ExpressionError, parse

_CONVERSION = re.compile(r"!([rs])\s*$")
_SAMPLE = {NUM: 1.0, TEXT: "x", BOOL: True}


@dataclass(frozen=True, slots=True)
class Field:
    expression: str
    node: Node
    conversion: str | None
    spec: str


class Template:
    """A compiled reason template; ``render(batch)`` gives one text per row."""

    def __init__(self, text: str, scope: Scope) -> None:
        self.text = text
        self.parts: list[str | Field] = []
        for literal, field, column in _split(text):
            if literal:
                self.parts.append(literal)
            if field is not None:
                self.parts.append(_field(text, field, column, scope))
        # a template without fields: its one text, the same on every row (6 of the 76 shipped
        # rules; unverified_phone fires on a third of the simulated purchases)
        # what is rendered: the parts with each constant field formatted once here and
        # adjacent texts joined (new_account's "(< {p.max_age_days:g} d)" fires on a fifth of
        # the simulated purchases)
        self.rendered = _folded(self.parts)
        literals = [part for part in self.rendered if isinstance(part, str)]
        self.literal = "".join(literals) if len(literals) == len(self.rendered) else None
        # ``rendered`` as one ``str.format`` pattern of its fields' values, in order: what
        # ``render`` makes of each row, in one call (None when a spec holds a brace)
        self.pattern = _pattern(self.rendered)
        # the fields' positions among the fields that show a boolean
        fields = [part for part in self.rendered if not isinstance(part, str)]
        self.booleans = [k for k, part in enumerate(fields) if part.node.type == BOOL]

    def render(self, batch: RuleBatch) -> list[str]:
        n = batch.n
        if self.literal is not None:
            return [self.literal] * n
        columns: list[list[str]] = []
        for part in self.rendered:
            if isinstance(part, str):
                columns.append([part] * n)
                continue
            value = part.node.run(batch)
            if isinstance(value, np.ndarray):  # a column, or a value broadcast to one
                values = (value if value.shape == (n,) else np.broadcast_to(value, n)).tolist()
            else:
                values = [value] * n
            if part.conversion == "r":
                values = list(map(repr, values))
            elif part.conversion == "s":
                values = list(map(str, values))
            columns.append(list(map(format, values, repeat(part.spec))))
        return list(map("".join, zip(*columns, strict=True)))


def _folded(parts: list[str | Field]) -> list[str | Field]:
    """``parts`` with a constant field as its text (what ``render`` formats on every row: the
    same value, conversion and spec) and adjacent texts joined. A constant that is a numpy
    array, or that cannot be formatted, is left to ``render``."""
    out: list[str | Field] = []
    for part in parts:
        if not isinstance(part, str) and part.node.const:
            value = part.node.run(None)
            if not isinstance(value, np.ndarray):
                try:
                    part = _formatted(value, part)
                except Exception:  # noqa: S110  (left to render, which raises it as always)
                    pass
        if isinstance(part, str) and out and isinstance(out[-1], str):
            out[-1] += part
        else:
            out.append(part)
    return out


def _pattern(parts: list[str | Field]) -> str | None:
    out, index = [], 0
    for part in parts:
        if isinstance(part, str):
            out.append(part.replace("{", "{{").replace("}", "}}"))
            continue
        if "{" in part.spec or "}" in part.spec:
            return None
        conversion = "" if part.conversion is None else f"!{part.conversion}"
        out.append(f"{{{index}{conversion}:{part.spec}}}")
        index += 1
    return "".join(out)


def _formatted(value: Any, field: Field) -> str:
    if field.conversion == "r":
        value = repr(value)
    elif field.conversion == "s":
        value = str(value)
    return format(value, field.spec)


def _split(text: str) -> Iterator[tuple[str, str | None, int]]:
    """(literal, field text or None, field's 0-based column) pieces of ``text``."""
    literal, i = [], 0
    while i < len(text):
        char = text[i]
        if char in "{}" and text[i + 1 : i + 2] == char:
            literal.append(char)
            i += 2
        elif char == "}":
            raise ExpressionError("single '}' (write '}}' for a brace)", text, 1, i + 1, "}")
        elif char == "{":
            end = _closing(text, i)
            yield "".join(literal), text[i + 1 : end], i + 1
            literal, i = [], end + 1
        else:
            literal.append(char)
            i += 1
    yield "".join(literal), None, 0


def _top_level(text: str, start: int = 0) -> Iterator[tuple[int, str]]:
    """(index, character) of ``text[start:]`` outside quotes and brackets (a closing bracket
    that opens nothing, like a field's '}', counts as outside)."""
    depth, quote = 0, ""
    for i in range(start, len(text)):
        char = text[i]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}" and depth:
            depth -= 1
        else:
            yield i, char


def _closing(text: str, start: int) -> int:
    """The index of the '}' closing the field opened at ``start``."""
    end = next((i for i, char in _top_level(text, start + 1) if char == "}"), None)
    if end is None:
        raise ExpressionError("'{' was never closed", text, 1, start + 1, "{")
    return end


def _field(text: str, field: str, column: int, scope: Scope) -> Field:
    expression, spec = _split_spec(field)
    conversion = None
    match = _CONVERSION.search(expression)
    if match:
        conversion, expression = match.group(1), expression[: match.start()]
    try:
        node = Compiler(expression, scope).compile(parse(expression))
    except ExpressionError as exc:
        shift = column if exc.line == 1 else 0
        raise ExpressionError(exc.message, text, 1, exc.column + shift, exc.token) from None
    if node.type not in _SAMPLE:
        raise ExpressionError(f"{node.type} cannot be shown in a reason", text, 1,
                              column + 1, expression.strip())  # fmt: skip
    try:
        format(_SAMPLE[node.type] if conversion is None else "x", spec)
    except ValueError as exc:
        raise ExpressionError(f"bad format '{spec}' for a {node.type}: {exc}", text, 1,
                              column + 1, field) from None  # fmt: skip
    return Field(expression, node, conversion, spec)


def _split_spec(field: str) -> tuple[str, str]:
    """``expression`` and ``spec`` of ``expression:spec`` (the first ':' outside quotes and
    brackets; the language has no other use for one)."""
    colon = next((i for i, char in _top_level(field) if char == ":"), None)
    return (field, "") if colon is None else (field[:colon], field[colon + 1 :])
