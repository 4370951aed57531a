"""The rule expression language: what each operator and function gives over a batch, how
missing values behave, templates, memoisation, and what is refused (with its position)."""

from __future__ import annotations

import ipaddress
import random

import numpy as np
import pytest

from processors.features import FEATURE_NAMES
from processors.rules import FUNCTIONS, ExpressionError, RuleBatch, default_lists
from processors.rules.batch import object_column
from processors.rules.compiler import Scope, compile_expression
from processors.rules.functions import BOOL, NUM, TEXT, ParsedIps, TextList, isin
from processors.rules.template import Template
from tests.support.rule_cases import CLEAN_FEATURES, CLEAN_PURCHASE

pytestmark = pytest.mark.unit

PARAMS = {"limit": 5, "ratio": 0.5, "names": ("headless", "bot"), "flag": True, "word": "x"}
SCOPE = Scope(PARAMS, default_lists())
ROWS = [  # (purchase fields, features)
    ({"ip": "185.220.101.4", "email_domain": "Mail.Deals.XYZ.", "user_agent": "HeadlessChrome",
      "geo": {"lat": 0.0, "lon": 0.0, "country": "de"}, "card_country": "DE"}, {"velocity_1h": 7}),
    ({"ip": "2001:db8::1", "email_domain": "x.mailinator.com", "user_agent": None, "geo": None,
      "card_country": None}, {"velocity_1h": 0, "account_age_days": -1}),
    ({"ip": "not-an-ip", "email_domain": "", "user_agent": "Googlebot",
      "geo": {"lat": 0.0, "lon": 0.0, "country": "US"}, "card_country": ""}, {"velocity_1h": 5}),
]  # fmt: skip


def batch(rows=ROWS, wallets=frozenset(), ips=frozenset()) -> RuleBatch:
    return RuleBatch.from_dicts([{**CLEAN_PURCHASE, **p} for p, _ in rows],
                                [{**CLEAN_FEATURES, **f} for _, f in rows], wallets, ips)  # fmt: skip


def run(text: str, want: str = BOOL, rows=ROWS, **blocked) -> list:
    value = compile_expression(text, SCOPE, want).run(batch(rows, **blocked))
    return np.broadcast_to(value, len(rows)).tolist()


@pytest.mark.parametrize(
    ("text", "want", "expected"),
    [
        ("velocity_1h >= p.limit", BOOL, [True, False, True]),
        ("0 <= velocity_1h < 6", BOOL, [False, True, True]),
        ("velocity_1h * 2 - 1", NUM, [13.0, -1.0, 9.0]),
        ("velocity_1h / 2 + p.ratio", NUM, [4.0, 0.5, 3.0]),
        ("-velocity_1h", NUM, [-7.0, -0.0, -5.0]),
        ("min(velocity_1h, 6, p.limit)", NUM, [5.0, 0.0, 5.0]),
        ("max(velocity_1h, 6)", NUM, [7.0, 6.0, 6.0]),
        ("abs(velocity_1h - 6)", NUM, [1.0, 6.0, 1.0]),
        ("ramp(velocity_1h, p.limit)", NUM, [0.7, 0.0, 0.5]),
        ("ramp(velocity_1h, 0)", NUM, [1.0, 1.0, 1.0]),
        ("missing(account_age_days)", BOOL, [False, True, False]),
        ("missing(user_agent)", BOOL, [False, True, False]),
        ("missing(card_country)", BOOL, [False, True, True]),
        ("lower(user_agent)", TEXT, ["headlesschrome", "", "googlebot"]),
        ("upper(country)", TEXT, ["DE", "", "US"]),
        ("country == 'US'", BOOL, [False, False, True]),
        ("upper(card_country) != upper(country)", BOOL, [False, False, True]),
        ("domain(email_domain)", TEXT, ["mail.deals.xyz", "x.mailinator.com", ""]),
        ("tld(email_domain)", TEXT, ["xyz", "com", ""]),
        ("domain_in(email_domain, lists.disposable_domains)", BOOL, [False, True, False]),
        ("domain_match(email_domain, lists.disposable_domains, ('deals.xyz',))", TEXT,
         ["deals.xyz", "mailinator.com", None]),
        ("contains_any(lower(user_agent), p.names)", BOOL, [True, False, True]),
        ("find_any(lower(user_agent), p.names)", TEXT, ["headless", None, "bot"]),
        ("valid_ip(ip)", BOOL, [True, True, False]),
        ("in_cidr(ip, lists.tor_exit)", BOOL, [True, False, False]),
        ("ip in lists.tor_exit", BOOL, [True, False, False]),
        ("ip in lists.non_public", BOOL, [False, True, False]),
        ("ip not in lists.tor_exit", BOOL, [False, True, True]),
        ("canonical_ip('2001:DB8:0::1')", TEXT, ["2001:db8::1"] * 3),
        ("canonical_ip(ip)", TEXT, ["185.220.101.4", "2001:db8::1", None]),
        ("upper(country) in ('DE', 'FR')", BOOL, [True, False, False]),
        ("card_country in ('', 'DE')", BOOL, [True, False, False]),  # missing is in nothing
        ("'n' + fmt(velocity_1h, '.1f') + card_country", TEXT, ["n7.0DE", "n0.0", "n5.0"]),
        ("'many' if velocity_1h > 5 else 'few'", TEXT, ["many", "few", "few"]),
        ("velocity_1h if velocity_1h > 5 else 0", NUM, [7.0, 0.0, 0.0]),
        ("not (velocity_1h > 5) or p.flag and p.word == 'y'", BOOL, [False, True, True]),
        ("p.limit * 2 == 10", BOOL, [True, True, True]),
        ("True and velocity_1h > 5", BOOL, [True, False, False]),
    ],
)  # fmt: skip
def test_expression_values(text, want, expected):
    got = run(text, want)
    if want == NUM:
        assert got == pytest.approx(expected)
    else:
        assert got == expected


def test_blocklists_are_the_callers():
    assert run("wallet in blocked.wallets", wallets={CLEAN_PURCHASE["wallet"]}) == [True] * 3
    assert run("ip in blocked.ips", ips={"2001:db8::1"}) == [False, True, False]
    assert run("seller_wallet in blocked.wallets", wallets={None, ""}) == [False] * 3


def test_and_stops_once_no_row_is_left():
    """The right side of 'and' is not computed when the left is false everywhere (here it
    would divide by zero)."""
    with np.errstate(divide="raise", invalid="raise"):
        assert run("velocity_1h > 100 and 1 / (velocity_1h - velocity_1h) > 0") == [False] * 3
        with pytest.raises(FloatingPointError):
            run("velocity_1h > 1 and 1 / (velocity_1h - velocity_1h) > 0")


def test_parameter_free_subexpressions_are_computed_once_per_batch(monkeypatch):
    calls = []
    spec = FUNCTIONS["lower"]
    monkeypatch.setitem(FUNCTIONS, "lower", spec.__class__(
        spec.name, spec.args, spec.result, lambda v: calls.append(1) or spec.impl(v), spec.doc))  # fmt: skip
    first = compile_expression("lower(user_agent) == 'googlebot'", SCOPE, BOOL)
    second = compile_expression("contains_any(lower(user_agent), p.names)", SCOPE, BOOL)
    one = batch()
    first.run(one), second.run(one)
    assert len(calls) == 1
    second.run(batch())
    assert len(calls) == 2


def test_constants_are_folded_at_compile_time():
    node = compile_expression("p.limit * 60 + 1", SCOPE, NUM)
    assert node.const and node.run(None) == 301


def test_a_template_renders_fields_with_formats_and_conversions():
    template = Template("{velocity_1h:g} > {p.limit} {{literal}} {user_agent!r} "
                        "{fmt(velocity_1h / 3, '.2f')} {velocity_1h >= 5}", SCOPE)  # fmt: skip
    assert template.render(batch()) == [
        "7 > 5 {literal} 'HeadlessChrome' 2.33 True",
        "0 > 5 {literal} None 0.00 False",
        "5 > 5 {literal} 'Googlebot' 1.67 True",
    ]
    assert Template("no fields", SCOPE).render(batch()) == ["no fields"] * 3
    assert Template("{{braces}} only}}", SCOPE).render(batch()) == ["{braces} only}"] * 3
    assert Template("", SCOPE).render(batch()) == [""] * 3
    assert Template("{p.limit}", SCOPE).render(batch()) == ["5"] * 3


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("x.__class__", 1, "attribute access is allowed only"),
        ("(1).__class__.__bases__", 1, "attribute access is allowed only"),
        ("__import__('os')", 1, "unknown function '__import__'"),
        ("exec('1') == 1", 1, "unknown function 'exec'"),
        ("velocity_1h > 1 if True else ip", 30, "'else' after a boolean needs a boolean"),
        ("lower(ip, ip) == ''", 1, "lower() takes 1 argument, got 2"),
        ("min(velocity_1h) > 1", 1, "min() takes 2 or more arguments, got 1"),
        ("lower(ip=ip) == ''", 1, "lower() takes positional arguments only"),
        ("velocity_1h in p.names", 1, "'in' needs a text on its left"),
        ("ip in ('a', 1)", 13, "a literal list holds only texts"),
        ("b'x' == ip", 1, "bytes literals are not allowed"),
        ("velocity_1h > 1 and ip", 21, "'and' needs a boolean, this is a text"),
        ("ip is None", 1, "operator 'is' is not allowed"),
        ("fmt(velocity_1h, p.word) == ''", 18, "argument 2 of fmt() must be a format text"),
        ("{1, 2}", 1, "a set literal is not allowed"),
        ("p.limit % 2 == 0", 1, "operator '%' is not allowed"),
        ("'a' - 'b' == ''", 1, "texts can only be joined with +"),
        ("'x' * 3 == ''", 7, "'*' with a text on its left needs a text"),
    ],
)
def test_refused_expressions_say_where(text, column, message):
    with pytest.raises(ExpressionError) as err:
        compile_expression(text, SCOPE, BOOL)
    assert err.value.line == 1 and err.value.column == column
    assert message in err.value.message


def test_a_too_long_or_too_deep_expression_is_refused():
    with pytest.raises(ExpressionError, match="longer than"):
        compile_expression("velocity_1h > 1 and " * 200 + "True", SCOPE, BOOL)
    with pytest.raises(ExpressionError, match="nested deeper than"):
        compile_expression("-" * 100 + "velocity_1h > 1", SCOPE, BOOL)
    with pytest.raises(ExpressionError, match="too many nested parentheses"):
        compile_expression("(" * 300 + "velocity_1h > 1" + ")" * 300, SCOPE, BOOL)


def test_every_feature_and_function_is_reachable():
    for name in FEATURE_NAMES:
        assert compile_expression(f"{name} == {name}", SCOPE, BOOL).type == BOOL
    assert {"min", "max", "abs", "ramp", "lower", "upper", "tld", "in_cidr", "missing"} <= set(
        FUNCTIONS)


def test_ip_columns_are_parsed_as_ipaddress_parses_them():
    """The fast IPv4 path (inet_pton) accepts exactly the texts ipaddress accepts."""
    rng = random.Random(3)
    texts = ["1.2.3.4", "01.2.3.4", "1.2.3", "256.1.1.1", " 1.2.3.4", "1.2.3.4\x00", "١.١.١.١",
             "", None, "0x1.2.3.4", "2001:db8::1", "::ffff:1.2.3.4", "fe80::1%eth0", 16909060]
    texts += ["".join(rng.choice("0123456789.x :f") for _ in range(rng.randint(3, 16)))
              for _ in range(20_000)]
    texts += [".".join(str(rng.randint(0, 300)).zfill(rng.choice((1, 1, 2, 3))) for _ in range(4))
              for _ in range(20_000)]  # fmt: skip
    parsed = ParsedIps(object_column(texts))
    for i, text in enumerate(texts):
        try:
            address = ipaddress.ip_address(text or "")
        except ValueError:
            address = None
        assert parsed.valid[i] == (address is not None), text
        if address is not None and address.version == 4:
            assert parsed.is_v4[i] and int(parsed.v4[i]) == int(address), text
        elif address is not None:
            assert not parsed.is_v4[i] and parsed.v6[i] == address, text


@pytest.mark.parametrize(
    ("collection", "expected"),
    [
        (TextList(["a", "c"]), [False, False, True, False]),
        (TextList(["", "a"]), [False, False, True, False]),
        (frozenset({None, "b"}), [False, False, False, True]),
        ({"", None, "a", "b"}, [False, False, True, True]),
        (set(), [False, False, False, False]),
    ],
)
def test_a_missing_text_is_in_no_list_even_one_that_holds_it(collection, expected):
    column = object_column([None, "", "a", "b"])
    assert isin(column, collection).tolist() == expected
    assert [isin(value, collection) for value in column.tolist()] == expected
