"""The faster pieces of the column rules engine give what they replaced
(``tests/support/rules_columns_before.py``): ``ParsedIps`` reading IPv4 texts natively
(``processors._native.ipv4_column``, inet_pton's own grammar), ``in_cidr`` on a column of
IPv4 addresses only, and ``Template`` formatting a constant field once."""

from __future__ import annotations

import ipaddress
import random
from itertools import islice
from socket import AF_INET, inet_pton
from typing import Any

import numpy as np
import pytest

from models.replay import replay_rows
from models.simulator import SimConfig, simulate
from processors._native import ipv4_column, text_column, text_columns
from processors.compute import FEATURE_NAMES
from processors.decide import as_matrix
from processors.rules import load_ruleset
from processors.rules.batch import (
    RuleBatch,
    distinct_of,
    object_column,
    python_values,
    record_values,
)
from processors.rules.compiler import Compiler, Node
from processors.rules.functions import NUM, ParsedIps, in_cidr
from processors.rules.lists import IpRanges, default_lists
from processors.rules.nodes import Scope
from processors.rules.syntax import parse
from processors.rules.template import Field, Template, _folded
from tests.support import rules_columns_before as before

pytestmark = pytest.mark.unit

ODD = ["1.2.3.4", "01.2.3.4", "0.0.0.0", "255.255.255.255", "256.1.1.1", "1.2.3", "1.2.3.4.",
       ".1.2.3.4", "1..2.3", "1.2.3.04", "00.1.1.1", "1.2.3.2555", " 1.2.3.4", "1.2.3.4 ",
       "1.2.3.4\x00", "١.١.١.١", "\ud800", "", None, 16909060, b"1.2.3.4", "2001:db8::1",
       "::ffff:1.2.3.4", "fe80::1%eth0", "0x1.2.3.4", "10.0.0.1", "185.220.101.3"]  # fmt: skip


def _inet_pton(value) -> bytes | None:
    try:
        return inet_pton(AF_INET, value)
    except (OSError, UnicodeError, ValueError, TypeError):
        return None


def _fuzz(seed: int, n: int) -> list:
    rng = random.Random(seed)
    texts = ["".join(rng.choice("0123456789..x:f ") for _ in range(rng.randint(0, 16)))
             for _ in range(n)]  # fmt: skip
    texts += [".".join(str(rng.randint(0, 300)).zfill(rng.choice((1, 1, 1, 2, 3)))
                       for _ in range(rng.choice((3, 4, 4, 4, 5)))) for _ in range(n)]  # fmt: skip
    return texts


def test_ipv4_column_reads_exactly_what_inet_pton_reads() -> None:
    values = ODD + _fuzz(7, 30_000)
    packed, others = ipv4_column(values)
    assert len(packed) == 4 * len(values) and others == sorted(set(others))
    refused = set(others)
    for i, value in enumerate(values):
        address = _inet_pton(value)
        if i in refused:
            assert address is None, repr(value)
            assert packed[4 * i : 4 * i + 4] == bytes(4)
        else:
            assert packed[4 * i : 4 * i + 4] == address, repr(value)
    assert ipv4_column([]) == (b"", [])


def _same_ips(new: ParsedIps, old: before.ParsedIps) -> None:
    for name in ("valid", "is_v4", "v4"):
        a, b = getattr(new, name), getattr(old, name)
        assert a.dtype == b.dtype and a.shape == b.shape and (a == b).all(), name
    assert new.v6.dtype == old.v6.dtype and new.v6.tolist() == old.v6.tolist()
    assert new.only_v4 == bool(new.is_v4.all())


@pytest.mark.parametrize(
    "values",
    [
        ["10.0.0.1", "185.220.101.3", "8.8.8.8", "192.168.1.20"],  # IPv4 only
        ODD,
        ["2001:db8::1", None, "1.2.3.4", "", "::1"],
        ["not an ip"],
        [],
    ],
)
def test_parsed_ips_and_in_cidr_as_before(values) -> None:
    column = object_column(values)
    new, old = ParsedIps(column), before.ParsedIps(column)
    _same_ips(new, old)
    for name, ranges in default_lists().items():
        if not isinstance(ranges, frozenset):
            got, want = in_cidr(new, ranges), before.in_cidr(old, ranges)
            assert got.dtype == want.dtype and got.tolist() == want.tolist(), name


def test_parsed_ips_of_one_value_and_of_fuzz() -> None:
    for value in ("1.2.3.4", "::1", None, "x"):
        _same_ips(ParsedIps(value), before.ParsedIps(value))
    column = object_column(ODD + _fuzz(11, 3_000))
    _same_ips(ParsedIps(column), before.ParsedIps(column))
    for text in ("1.2.3.4", "2001:db8::1"):
        parsed = ParsedIps(text)
        assert parsed.valid[0] and int(parsed.v4[0]) == (
            int(ipaddress.ip_address(text)) if parsed.is_v4[0] else 0)  # fmt: skip


@pytest.fixture(scope="module")
def batch() -> RuleBatch:
    events = [e for e in simulate(SimConfig(seed=5, days=1)) if e[0] != "label"]
    pending = list(islice(replay_rows(events), 400))
    X, _ = as_matrix([f for _, f in pending])
    return RuleBatch([p for p, _ in pending], X)


def test_every_shipped_reason_renders_as_before(batch) -> None:
    ruleset = load_ruleset()
    rules = list(ruleset.active) + [a for org in ruleset.organizers
                                    for a in ruleset.for_organizer(org).active]  # fmt: skip
    folded = 0
    for active in rules:
        template = active.compiled.reason
        folded += len(template.rendered) < len(template.parts)
        with np.errstate(divide="raise", invalid="raise", over="ignore"):
            fired = np.flatnonzero(active.compiled.when.run(batch))
            for group in (batch, batch.subset(fired), batch.subset(np.arange(0))):
                assert template.render(group) == before.render(template, group), active.rule.id
    assert folded >= 10  # the shipped rules' parameters in their reasons are formatted once


SCOPE = Scope({"limit": 5, "ratio": 0.125, "name": "Edge {case}", "on": True, "big": 1e400},
              default_lists())  # fmt: skip


@pytest.mark.parametrize(
    "text",
    [
        "{p.limit} / {p.limit:>6.2f} / {p.limit!r:^9} / {p.name!s:<14}|{p.name!r}",
        "{{{p.name}}} {{literal}} {p.ratio:.1%} {p.on} {p.on:d} {p.big:g} {-p.big:.0f}",
        "{velocity_1h:g} of {p.limit:g} ({velocity_1h / p.limit:.2f}x) {user_agent!r:.12}",
        "{p.limit * 60 + 1:,} s, {abs(-p.ratio):e}, {min(p.limit, 3)}, {max(velocity_1h, 3):g}",
        "{p.limit}",
        "{p.limit}{p.ratio}{p.name}",
        "{'fixed ' + 'text'} then {wallet}",
    ],
)
def test_templates_with_constants_render_as_before(batch, text) -> None:
    template = Template(text, SCOPE)
    for group in (batch, batch.subset(np.arange(3)), batch.subset(np.arange(0))):
        assert template.render(group) == before.render(template, group)


def test_a_constant_that_does_not_format_is_left_to_render() -> None:
    odd = Field("p.x", Node(NUM, lambda _batch: object(), const=True), None, "d")
    two = Field("p.y", Node(NUM, lambda _batch: 2, const=True), "r", ">3")
    parts: list[str | Field] = ["a", odd, "b", two, "c"]
    assert _folded(parts) == ["a", odd, "b  2c"]
    array = Field("p.z", Node(NUM, lambda _batch: np.arange(2.0), const=True), None, "g")
    assert _folded([array, "x"]) == [array, "x"]


# Text columns: read natively, and functions of one field computed per distinct value ---------

ODD_VALUES = ["a", "A", "", None, "a", 1, True, 1.0, 0, False, float("nan"), float("nan"), b"a",
              -1, -2, "x.example.com", "  Mail.XYZ.", "CRYPTO", "crypto", "\u0130", "ß"]  # fmt: skip


def _odd_records() -> list[dict]:
    records = []
    for i, value in enumerate(ODD_VALUES):
        record: dict = {"email_domain": value, "payment_method": ODD_VALUES[-i]}
        if i % 5:
            record["wallet"] = f"0x{i % 3}"
        record["geo"] = [None, {}, {"country": value}, {"lat": 1.0}, {"country": "IT"}][i % 5]
        records.append(record)
    return records


def test_text_columns_are_read_natively_as_in_python() -> None:
    records = _odd_records()
    names = ["email_domain", "wallet", "country", "payment_method", "absent"]
    fields: list[tuple[str, str | None]] = [
        ("geo", "country") if n == "country" else (n, None) for n in names
    ]
    for name, column in zip(names, text_columns(records, fields), strict=True):
        want = python_values(records, name)
        assert len(column) == len(want)
        assert all(a is b for a, b in zip(column, want, strict=True)), name  # the same objects
        assert record_values(records, name) == column
    assert text_columns([], fields) == [[] for _ in names]
    odd: list[Any] = [{"geo": ["not", "a", "dict"]}, ("not", "a", "dict")]
    for refused in ([*records, odd[0]], [*records, odd[1]]):
        with pytest.raises(ValueError):
            text_columns(refused, fields)
        with pytest.raises(ValueError):
            text_column(refused, "geo", "country")
        if isinstance(refused[-1], dict):
            assert record_values(refused, "email_domain") == python_values(refused, "email_domain")


def python_distinct(values: list) -> tuple[list, np.ndarray] | None:
    """What ``batch.distinct_of`` gives, in Python: ``dict.fromkeys`` of the values, and each
    value's index among its keys."""
    try:
        index = dict.fromkeys(values)
    except TypeError:  # unhashable
        return None
    for i, value in enumerate(index):
        index[value] = i
    return list(index), np.fromiter(map(index.__getitem__, values), np.intp, len(values))


def test_distinct_values_tell_values_apart_as_a_dict_does() -> None:
    fuzz = [random.Random(3).choice(ODD_VALUES) for _ in range(2_000)]
    for values in (ODD_VALUES, fuzz, [], [None] * 3):
        got, want = distinct_of(values), python_distinct(values)
        assert got is not None and want is not None
        assert len(got[0]) == len(want[0])
        assert all(a is b for a, b in zip(got[0], want[0], strict=True))
        assert got[1].dtype == np.intp and got[1].tolist() == want[1].tolist()
    assert distinct_of(["a", ["unhashable"]]) is None and python_distinct(["a", ["x"]]) is None


EACH = ["lower(user_agent)", "missing(email_domain)", "not missing(domain(email_domain))",
        "tld(email_domain) in p.tlds", "upper(country) in p.countries",
        "payment_method == 'CRYPTO'", "'CRYPTO' != payment_method",
        "domain_in(email_domain, lists.disposable_domains, p.extra)",
        "domain_match(email_domain, lists.disposable_domains)",
        "contains_any(lower(user_agent), p.patterns)", "find_any(user_agent, p.patterns)",
        "email_domain in ('', 'gmail.com')", "canonical_ip(ip)",
        "upper(card_country) != upper(country)"]  # fmt: skip
EACH_SCOPE = Scope({"tlds": ("xyz", "com", ""), "countries": ("IT", "", "US"),
                    "extra": ("example.com",), "patterns": ("bot", "curl", "A")},
                   default_lists())  # fmt: skip


@pytest.mark.parametrize("text", EACH)
def test_functions_of_one_field_by_distinct_values_as_row_by_row(batch, text, monkeypatch) -> None:
    """A function of one text field, computed once per distinct value of the field
    (``nodes.by_distinct``), gives the column its plain form gives (which it falls back to
    when a value is unhashable): shipped traffic, odd values, and subsets."""
    node = Compiler(text, EACH_SCOPE).compile(parse(text))
    # by distinct values itself, or (`not`, a comparison of two fields) its parts are
    assert (node.each is None) == text.startswith(("not ", "upper(card_country) !="))

    def groups() -> list[RuleBatch]:  # new ones each time: a batch keeps what it computed
        shipped = RuleBatch(batch.records, np.zeros((batch.n, len(FEATURE_NAMES))))
        odd = RuleBatch(_odd_records(), np.zeros((len(ODD_VALUES), len(FEATURE_NAMES))))
        return [shipped, shipped.subset(np.arange(7)), odd, odd.subset(np.array([4, 0, 9]))]

    got = [_outcome(node, group) for group in groups()]
    monkeypatch.setattr(RuleBatch, "distinct", lambda self, name: None)  # the plain form
    assert [_outcome(node, group) for group in groups()] == got


def _outcome(node: Node, group: RuleBatch) -> tuple:
    try:
        value = node.run(group)
    except Exception as exc:  # the same error, or the same column
        return ("error", type(exc).__name__, str(exc))
    return (value.dtype.str, [(type(v).__name__, repr(v)) for v in value.tolist()])


def test_ip_ranges_of_a_column_as_of_one_address() -> None:
    """``IpRanges.contains_v4`` (one searchsorted over the intervals' bounds) says what
    ``holds`` (a bisect per address) says: every interval's edges and their neighbours, the
    ends of the address space, random addresses; adjacent and overlapping ranges merged."""
    rng = random.Random(5)
    lists = [*(r for r in default_lists().values() if isinstance(r, IpRanges)),
             IpRanges(["10.0.0.0/9", "10.128.0.0/9", "10.64.0.0/10", "0.0.0.0/32",
                       "255.255.255.255/32", "192.168.1.7/32", "2001:db8::/32"]),
             IpRanges([]), IpRanges(["::1/128"])]  # fmt: skip
    for ranges in lists:
        edges = [0, 1, 2**32 - 2, 2**32 - 1]
        for lo, hi in zip(ranges._starts[4], ranges._ends[4], strict=True):
            edges += [max(lo - 1, 0), lo, hi, min(hi + 1, 2**32 - 1)]
        addresses = edges + [rng.randrange(2**32) for _ in range(5_000)]
        got = ranges.contains_v4(np.asarray(addresses, dtype=np.uint64))
        assert got.dtype == np.bool_
        assert got.tolist() == [ranges.holds(4, a) for a in addresses]
