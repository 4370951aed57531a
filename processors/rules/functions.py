"""The fixed set of functions a rule expression may call, each vectorised over a batch.

A value is a numpy column (one entry per purchase) or a scalar (a constant, a parameter).
Types: ``number`` (float), ``boolean``, ``text`` (str, or None when missing), ``list`` (text
entries: ``p.<list param>``, ``lists.<name>``, ``blocked.wallets``) and ``IP ranges``
(``lists.<name>_cidrs`` files). Nothing here is reachable but through ``FUNCTIONS``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache, reduce
from itertools import repeat
from socket import AF_INET, inet_pton
from typing import Any

import numpy as np

from processors._native import ipv4_column
from processors.rules.batch import object_column
from processors.rules.lists import IpRanges
from processors.signals import MISSING

NUM, BOOL, TEXT, LIST, RANGES = "number", "boolean", "text", "list", "IP ranges"
IP = "ip"  # an argument given as text, parsed once per batch into addresses
SPEC = "format"  # an argument that must be a constant format spec, e.g. ".1f"


class TextList:
    """A list parameter: its entries in order (``find_any`` names the first that matches),
    as a set (membership) and as one pattern matching any entry (``contains_any``)."""

    __slots__ = ("items", "members", "pattern")

    def __init__(self, items: Iterable[str]) -> None:
        self.items = tuple(items)
        self.members = frozenset(self.items)
        self.pattern = re.compile("|".join(re.escape(i) for i in self.items)) if self.items else None

    def __contains__(self, value: object) -> bool:
        return value in self.members

    def __iter__(self):
        return iter(self.items)

    def __repr__(self) -> str:
        return f"TextList({list(self.items)!r})"


def _distinct(fn: Callable[[Any], Any], column: np.ndarray) -> Iterator[Any]:
    """``fn`` of each entry, called once per distinct value (texts repeat in a batch); the
    passes over the column run in C."""
    values = column.tolist()
    done = {v: fn(v) for v in dict.fromkeys(values)}
    return map(done.__getitem__, values)


def each_text(fn: Callable[[Any], Any], value: Any) -> Any:
    """``fn`` over a text column (an object column out), or on a scalar."""
    if isinstance(value, np.ndarray):
        return object_column(_distinct(fn, value), len(value))
    return fn(value)


def each_test(fn: Callable[[Any], bool], value: Any) -> Any:
    """``fn`` over a column (a boolean column out), or on a scalar."""
    if isinstance(value, np.ndarray):
        return np.fromiter(_distinct(fn, value), dtype=bool, count=len(value))
    return bool(fn(value))


def present(column: np.ndarray) -> np.ndarray:
    """Texts that are neither None nor ''."""
    return np.asarray((column != None) & (column != ""), dtype=bool)  # noqa: E711


def isin(value: Any, collection: Any) -> Any:
    """``value in collection`` per entry; a missing value (None or '') is in nothing."""
    if not isinstance(value, np.ndarray):
        return bool(value) and value in collection
    if not collection:
        return np.zeros(len(value), dtype=bool)
    # a list parameter's frozenset itself: its C __contains__, not TextList's Python one
    # (~0.25 µs a row; three shipped rules test 500 rows each a batch)
    members = collection.members if isinstance(collection, TextList) else collection
    member = np.fromiter(map(members.__contains__, value.tolist()), dtype=bool, count=len(value))
    if None in members or "" in members:  # else a missing value is in nothing already
        member &= present(value)
    return member


def missing_text(value: Any) -> bool:
    """``missing`` of one value of a text column, as ``~present`` of the column has it."""
    return not (bool(value != None) and bool(value != ""))  # noqa: E711


def in_collection(collection: Any) -> Callable[[Any], bool]:
    """``isin`` of one value of a text column in ``collection`` (a constant one), as ``isin``
    of the column has it."""
    if not collection:
        return lambda _value: False
    members = collection.members if isinstance(collection, TextList) else collection
    if None in members or "" in members:
        return lambda value: value in members and not missing_text(value)
    return members.__contains__


def concat(left: Any, right: Any) -> Any:
    """Text ``left + right``, a missing side counting as ''."""
    if not isinstance(left, np.ndarray):
        if not isinstance(right, np.ndarray):
            return (left or "") + (right or "")
        head = left or ""  # a text and a column
        return object_column([head + (b or "") for b in right.tolist()])
    if not isinstance(right, np.ndarray):
        tail = right or ""
        return object_column([(a or "") + tail for a in left.tolist()])
    pairs = zip(left.tolist(), right.tolist(), strict=True)
    return object_column([(a or "") + (b or "") for a, b in pairs])


def _domain(text: Any) -> str:
    return (text or "").lower().strip(".")


def _domain_match(text: Any, collections: tuple) -> str | None:
    parts = _domain(text).split(".")
    for i in range(len(parts) - 1):
        candidate = ".".join(parts[i:])
        if any(candidate in c for c in collections):
            return candidate
    return None


def _find_any(text: Any, patterns: Any) -> str | None:
    text = text or ""
    return next((p for p in patterns if p in text), None)


def _contains_any(text: Any, patterns: Any) -> bool:
    if isinstance(patterns, TextList):
        return patterns.pattern is not None and patterns.pattern.search(text or "") is not None
    return _find_any(text, patterns) is not None


def ramp(value: Any, limit: Any) -> Any:
    """0.5 at the limit, rising linearly to 1.0 at twice the limit (1.0 for a limit <= 0)."""
    value, limit = np.asarray(value, dtype=np.float64), np.asarray(limit, dtype=np.float64)
    positive = limit > 0
    rising = np.minimum(1.0, 0.5 + 0.5 * (value - limit) / np.where(positive, limit, 1.0))
    out = np.where(positive, rising, 1.0)
    return out if out.ndim else float(out)


def missing_number(value: float) -> bool:
    """``missing`` of one number."""
    return value == MISSING or value != value


def missing(value: Any) -> Any:
    """No value: a number equal to MISSING (-1) or NaN; a text None or ''."""
    if isinstance(value, np.ndarray) and value.dtype != object:
        return (value == MISSING) | np.isnan(value)
    if isinstance(value, float | int):
        return missing_number(value)
    if isinstance(value, np.ndarray):  # texts
        return ~present(value)
    return not value


_NOT_V4 = (OSError, UnicodeError, ValueError, TypeError)  # what inet_pton raises
_NO_V4 = bytes(4)


def parse_ip(text: Any) -> tuple[bool, int, Any]:
    """``_parse_ip``, remembered for the latest texts (a row's IP is read by five rules)."""
    return _parse_text_ip(text) if isinstance(text, str) else _parse_ip(text)


def _parse_ip(text: Any) -> tuple[bool, int, Any]:
    """(valid, IPv4 as an integer or -1, the IPv6 address or None) of one value, as
    ``ipaddress.ip_address`` reads it. IPv4 goes through ``inet_pton``, which accepts exactly
    the texts ``ipaddress`` does (four decimal octets, no leading zeros) and is ten times faster
    (``test_rules_language`` compares them)."""
    try:
        return True, int.from_bytes(inet_pton(AF_INET, text), "big"), None
    except _NOT_V4:
        pass
    try:
        address = ipaddress.ip_address(text or "")
    except ValueError:
        return False, -1, None
    if address.version == 4:
        return True, int(address), None
    return True, -1, address


class ParsedIps:
    """A text column parsed as IP addresses once per batch: ``valid``, and per row the IPv4
    address as an integer (``is_v4``) or the IPv6 address object; ``only_v4``: every row's is
    an IPv4 address."""

    __slots__ = ("valid", "is_v4", "v4", "v6", "only_v4")

    def __init__(self, values: Any) -> None:
        column = values if isinstance(values, np.ndarray) else object_column([values])
        n = len(column)
        self.v6 = np.full(n, None, dtype=object)
        self.valid, self.is_v4 = np.ones(n, dtype=bool), np.ones(n, dtype=bool)
        texts = column.tolist()
        # The IPv4 texts natively, by inet_pton's own grammar (~30 against ~500 ns a value:
        # the shipped rules read a batch's IPs once, for five rules); the others as before.
        packed, others = ipv4_column(texts)
        self.only_v4 = not others
        if others:
            buffer = bytearray(packed)
            for i in others:
                value = texts[i]
                try:
                    buffer[4 * i : 4 * i + 4] = inet_pton(AF_INET, value)
                    continue
                except _NOT_V4:
                    pass
                self.valid[i], v4, self.v6[i] = parse_ip(value)  # IPv6, invalid, or not a text
                self.is_v4[i] = v4 >= 0
                buffer[4 * i : 4 * i + 4] = v4.to_bytes(4, "big") if v4 >= 0 else _NO_V4
            packed = bytes(buffer)
        self.v4 = np.frombuffer(packed, dtype=">u4").astype(np.uint64)


_parse_text_ip = lru_cache(maxsize=4096)(_parse_ip)


def _canonical_ip(text: Any) -> str | None:
    valid, v4, v6 = parse_ip(text)
    if not valid:
        return None
    return str(ipaddress.IPv4Address(v4) if v6 is None else v6)


def in_cidr(ips: ParsedIps, ranges: IpRanges) -> np.ndarray:
    if ips.only_v4:  # every row's address is an IPv4 one: what the masks below select
        return ranges.contains_v4(ips.v4)
    out = np.zeros(len(ips.valid), dtype=bool)
    if ips.is_v4.any():
        out[ips.is_v4] = ranges.contains_v4(ips.v4[ips.is_v4])
    for i in np.flatnonzero(ips.valid & ~ips.is_v4):
        out[i] = ips.v6[i] in ranges
    return out


def in_ranges(text: Any, ranges: IpRanges) -> bool:
    """``in_cidr`` of one text: its IPv4 address, else its IPv6 address, in the ranges."""
    valid, v4, v6 = parse_ip(text)
    if v4 >= 0:
        return ranges.holds(4, v4)
    return valid and v6 in ranges


def fmt(value: Any, spec: str) -> Any:
    if isinstance(value, np.ndarray):
        return object_column(list(map(format, value.tolist(), repeat(spec))))
    return format(value, spec)


@dataclass(frozen=True, slots=True)
class Function:
    """``args``: the accepted types of each argument (the last repeats if ``variadic``);
    ``result``: the type given back (None: the type of the first argument); ``impl`` takes
    columns or scalars; ``one``, when given, is the same on single values only (the row path,
    ``rowwise``), faster than ``impl``'s scalar branch."""

    name: str
    args: tuple[tuple[str, ...], ...]
    result: str | None
    impl: Callable[..., Any]
    doc: str
    variadic: bool = False
    one: Callable[..., Any] | None = None


def _lower(x: Any) -> str:
    return (x or "").lower()


def _upper(x: Any) -> str:
    return (x or "").upper()


def _tld(x: Any) -> str:
    return _domain(x).rsplit(".", 1)[-1]


def _domain_in(x: Any, *collections: Any) -> bool:
    return _domain_match(x, collections) is not None


def _domain_match_of(x: Any, *collections: Any) -> str | None:
    return _domain_match(x, collections)


def _text_function(name: str, one: Callable[..., Any], doc: str, args: tuple = ((TEXT,),),
                   result: str | None = TEXT, variadic: bool = False) -> Function:  # fmt: skip
    """A function of a text (and constant arguments), computed once per distinct text."""
    each = each_text if result == TEXT else each_test
    return Function(name, args, result, lambda v, *c: each(lambda x: one(x, *c), v), doc,
                    variadic, one)  # fmt: skip


FUNCTIONS: dict[str, Function] = {f.name: f for f in (
    Function("min", ((NUM,), (NUM,)), NUM, lambda *v: reduce(np.minimum, v),
             "the smallest of its arguments", variadic=True),
    Function("max", ((NUM,), (NUM,)), NUM, lambda *v: reduce(np.maximum, v),
             "the largest of its arguments", variadic=True),
    Function("abs", ((NUM,),), NUM, np.abs, "absolute value"),
    Function("ramp", ((NUM,), (NUM,)), NUM, ramp,
             "ramp(value, limit): 0.5 at the limit, 1.0 at twice the limit"),
    Function("missing", ((NUM, TEXT),), BOOL, missing,
             "no value: a number equal to -1 (MISSING), a text that is absent or empty"),
    _text_function("lower", _lower, "lower case ('' when missing)"),
    _text_function("upper", _upper, "upper case ('' when missing)"),
    _text_function("domain", _domain, "a domain lower-cased, without leading or trailing dots"),
    _text_function("tld", _tld, "the top-level domain: tld('Mail.Deals.XYZ') is 'xyz'"),
    _text_function("domain_in", _domain_in,
                   "domain_in(domain, list, ...): the domain or a parent domain is listed",
                   ((TEXT,), (LIST,)), BOOL, variadic=True),
    _text_function("domain_match", _domain_match_of,
                   "the longest parent domain (or the domain) that is listed, else missing",
                   ((TEXT,), (LIST,)), TEXT, variadic=True),
    _text_function("contains_any", _contains_any,
                   "contains_any(text, list): some entry of the list occurs in the text",
                   ((TEXT,), (LIST,)), BOOL),
    _text_function("find_any", _find_any,
                   "the first entry of the list that occurs in the text, else missing",
                   ((TEXT,), (LIST,)), TEXT),
    Function("valid_ip", ((IP,),), BOOL, lambda ips: ips.valid, "the text is an IP address",
             one=lambda text: parse_ip(text)[0]),
    _text_function("canonical_ip", _canonical_ip,
                   "an IP address in its canonical form ('2001:db8::1'), missing when invalid"),
    Function("in_cidr", ((IP,), (RANGES,)), BOOL, in_cidr,
             "in_cidr(ip, lists.tor_exit): the address is in one of the ranges",
             one=in_ranges),
    Function("fmt", ((NUM, TEXT), (SPEC,)), TEXT, fmt,
             "fmt(value, '.1f'): a value as text, with a Python format spec"),
)}  # fmt: skip
