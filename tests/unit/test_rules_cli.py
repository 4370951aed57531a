"""``sentinel rules list|check FILE``: a valid file is described; a bad one is refused with the
rule and parameter named, and a bad or unsafe expression with the rule, the line, the
column and the token; exit status 1."""

from __future__ import annotations

import json

import pytest

from infra.cli import main
from processors.rules import DEFAULT_RULES_PATH

pytestmark = pytest.mark.unit


def rules_file(tmp_path, when: str, reason: str = "fired", extra: str = ""):
    """A one-rule rules file (``velocity``, with parameter ``limit``) written to tmp_path."""
    path = tmp_path / "rules.toml"
    path.write_text(
        'version = "x"\n[rules.velocity]\ncategory = "behavioral"\nweight = 0.5\n'
        f"params = {{ limit = 5 }}\nwhen = {json.dumps(when)}\nreason = {json.dumps(reason)}\n"
        + extra
    )
    return path


def refused(path, capsys) -> str:
    assert main(["rules", "check", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


def test_check_accepts_the_committed_rules_file(capsys):
    assert main(["rules", "check"]) == 0
    out = capsys.readouterr().out
    assert "76 rules compiled, 76 active rules" in out


def test_check_accepts_a_file_of_its_own(tmp_path, capsys):
    path = rules_file(tmp_path, "velocity_1h >= p.limit and ip in lists.tor_exit",
                      "{velocity_1h:g} purchases (limit {p.limit})")  # fmt: skip
    assert main(["rules", "check", str(path)]) == 0
    assert "1 rules compiled, 1 active rules" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[organizers.o1.rules.nope]\nweight = 1.0\n", "organizers.o1.rules.nope: unknown rule 'nope'"),
        ('[organizers.o1.rules.bulk_order.params]\nmax_quantity = "ten"\n',
         "organizers.o1.rules.bulk_order.params.max_quantity: expected int, got str"),
        ("[organizers.o1.rules.bulk_order.params]\nmax_qty = 3\n",
         "organizers.o1.rules.bulk_order.params.max_qty: rule 'bulk_order' has no parameter"),
    ],
)  # fmt: skip
def test_check_refuses_a_bad_file_naming_rule_and_parameter(tmp_path, capsys, extra, message):
    path = tmp_path / "rules.toml"
    path.write_text(DEFAULT_RULES_PATH.read_text() + "\n" + extra)
    assert message in refused(path, capsys)


# (expression, where: "line L, column C", message, token)
BAD_EXPRESSIONS = [
    ("__import__('os') == 1", "line 1, column 1", "unknown function '__import__'", "'__import__'"),
    ("__import__('os').system('true')", "line 1, column 1", "attribute access is allowed only",
     "\"__import__('os').system\""),
    ("ip.__class__", "line 1, column 1", "attribute access is allowed only as p.<param>",
     "'ip.__class__'"),
    ("velocity_1h > 0 and p.limit.__class__ == 1", "line 1, column 21",
     "attribute access is allowed only", "'p.limit.__class__'"),
    ("open('f') == 'x'", "line 1, column 1", "unknown function 'open'", "'open'"),
    ("eval('velocity_1h') > 1", "line 1, column 1", "unknown function 'eval'", "'eval'"),
    ("lower.__globals__", "line 1, column 1", "attribute access is allowed only", "'lower.__globals__'"),
    ("velocty_1h >= p.limit", "line 1, column 1",
     "unknown name 'velocty_1h' (did you mean 'velocity_1h'?)", "'velocty_1h'"),
    ("velocity_1h >= p.limt", "line 1, column 16",
     "no parameter 'limt' (did you mean 'limit'?) (declared: limit)", "'p.limt'"),
    ("ip in lists.tor_exits", "line 1, column 7",
     "no reference list 'tor_exits' (did you mean 'tor_exit'?)", "'lists.tor_exits'"),
    ("velocity_1h >= ", "line 1, column 16", "incomplete expression", "the end"),
    ("velocity_1h >= (p.limit", "line 1, column 16", "'(' was never closed", "'('"),
    ("velocity_1h => p.limit", "line 1, column 13", "invalid syntax", "'='"),
    ("velocity_1h >= p.limit and\n  ip[0] == '1'", "line 2, column 3", "indexing (x[...]) is not allowed",
     "'ip[0]'"),
    ("[ip for ip in blocked.ips] == 1", "line 1, column 1", "a comprehension is not allowed", "'[ip"),
    ("(lambda: 1)() == 1", "line 1, column 2", "lambda is not allowed", "'lambda: 1'"),
    ("velocity_1h ** 99 > 1", "line 1, column 1", "operator '**' is not allowed", "'velocity_1h ** 99'"),
    ("velocity_1h", "line 1, column 1", "the expression gives a number, a boolean is needed",
     "'velocity_1h'"),
    ("ip > 3", "line 1, column 1", "cannot compare a text with a number using '>'", "'ip > 3'"),
    ("velocity_1h >= 1 / 0", "line 1, column 16", "cannot be computed: division by zero", "'1 / 0'"),
]  # fmt: skip


@pytest.mark.parametrize(("expression", "where", "message", "token"), BAD_EXPRESSIONS)
def test_check_refuses_a_malformed_or_unsafe_expression_with_its_position(
    tmp_path, capsys, expression, where, message, token
):
    err = refused(rules_file(tmp_path, expression), capsys)
    assert f"rules.velocity.when: {where}: {message}" in err
    assert f"(at {token}" in err
    assert "^" in err  # the caret under the token


def test_check_refuses_a_bad_reason_template_with_its_position(tmp_path, capsys):
    err = refused(rules_file(tmp_path, "velocity_1h > 1", "{velocity_1h:g} then {ip.__class__}"),
                  capsys)  # fmt: skip
    assert "rules.velocity.reason: line 1, column 23: attribute access is allowed only" in err
    err = refused(rules_file(tmp_path, "velocity_1h > 1", "{velocity_1h:q}"), capsys)
    assert "rules.velocity.reason: line 1, column 2: bad format 'q' for a number" in err


def test_a_refused_expression_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "ran"
    refused(rules_file(tmp_path, f"open({str(marker)!r}, 'w') == 1"), capsys)
    refused(rules_file(tmp_path, f"__import__('pathlib').Path({str(marker)!r}).touch()"), capsys)
    assert not marker.exists()


def test_list_shows_an_organizers_overrides(capsys):
    assert main(["rules", "list", "--organizer", "org_stadium_tour"]) == 0
    out = capsys.readouterr().out
    assert "quantity_over_limit" in out and "max_tickets=4" in out and "policy: 2FA >" in out


def test_list_shows_the_expressions(capsys):
    assert main(["rules", "list", "--expressions"]) == 0
    out = capsys.readouterr().out
    assert "when:   velocity_1h >= p.max_purchases" in out
    assert "score:  ramp(velocity_1h, p.max_purchases)" in out
