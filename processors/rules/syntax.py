"""Reading rule expressions: Python's own parser (``ast.parse``, which only builds a tree and
runs nothing), then ``processors.rules.compiler`` accepts a small whitelist of node types.
Every refusal is an ``ExpressionError`` with the line, the column and the offending token.
"""

from __future__ import annotations

import ast
import re

MAX_LENGTH = 2_000  # characters of one expression
MAX_DEPTH = 60  # nesting of operators and calls
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z_0-9]*|\d[\d_.eE]*|'[^']*'?|\"[^\"]*\"?|\S")


class ExpressionError(ValueError):
    """A refused expression: what is wrong, where (1-based line and column) and the token."""

    def __init__(self, message: str, text: str, line: int, column: int, token: str) -> None:
        self.message, self.text = message, text
        self.line, self.column, self.token = line, column, token
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = self.text.splitlines() or [""]
        source = lines[min(self.line, len(lines)) - 1]
        caret = " " * (self.column - 1) + "^"
        at = repr(self.token) if self.token else "the end"
        return (
            f"line {self.line}, column {self.column}: {self.message} (at {at})\n"
            f"    {source}\n    {caret}"
        )


def token_at(text: str, line: int, column: int) -> str:
    """The token starting at 1-based ``line``/``column`` of ``text`` (or '' at the end)."""
    lines = text.splitlines() or [""]
    rest = lines[min(max(line, 1), len(lines)) - 1][max(column, 1) - 1 :]
    match = _TOKEN.search(rest)
    return match.group(0) if match else ""


def wrap(text: str) -> str:
    """What is parsed: the text in parentheses on lines of their own, so that an expression
    may span lines (as in a TOML multi-line string) with positions unchanged but the line."""
    return f"(\n{text}\n)"


def _position(text: str, line: int, column: int) -> tuple[int, int]:
    """A position in ``wrap(text)`` as a position in ``text`` (the wrapper's lines clamped)."""
    lines = text.splitlines() or [""]
    if line - 1 < 1:
        return 1, 1
    if line - 1 > len(lines):
        return len(lines), len(lines[-1]) + 1
    return line - 1, column


def error_at(node: ast.AST, text: str, message: str, token: str | None = None) -> ExpressionError:
    """An ``ExpressionError`` located at ``node`` (the token defaults to its source text)."""
    line, column = _position(text, getattr(node, "lineno", 2), getattr(node, "col_offset", 0) + 1)
    if token is None:
        token = ast.get_source_segment(wrap(text), node) or token_at(text, line, column)
        token = token if len(token) <= 40 else token[:37] + "..."
    return ExpressionError(message, text, line, column, token)


def parse(text: str) -> ast.expr:
    """The expression tree of ``text``, or an ``ExpressionError`` for a syntax error."""
    if not isinstance(text, str):
        raise ExpressionError(f"expected a text, got {type(text).__name__}", "", 1, 1, "")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"longer than {MAX_LENGTH} characters", text, 1, 1, text[:10])
    if not text.strip():
        raise ExpressionError("empty expression", text, 1, 1, "")
    try:
        return ast.parse(wrap(text), mode="eval").body
    except SyntaxError as exc:
        raise _syntax_error(text, exc) from None
    except (RecursionError, MemoryError):
        raise ExpressionError("nested too deeply", text, 1, 1, text[:10]) from None


def _syntax_error(text: str, exc: SyntaxError) -> ExpressionError:
    """The error located in ``text``. An error on the wrapper's closing line is an incomplete
    expression (reported at its end); one on the opening line is an unclosed bracket, located
    by parsing a one-line text again, bare."""
    line, column = _position(text, exc.lineno or 2, exc.offset or 1)
    message = exc.msg or "invalid syntax"
    if (exc.lineno or 2) > len(text.splitlines() or [""]) + 1 and message == "invalid syntax":
        message = "incomplete expression"
    if (exc.lineno or 2) == 1 and "\n" not in text:
        try:
            ast.parse(text, mode="eval")
        except SyntaxError as bare:
            line, column, message = 1, min(bare.offset or 1, len(text) + 1), bare.msg or message
        except (RecursionError, MemoryError):
            pass
    return ExpressionError(message, text, line, column, token_at(text, line, column))
