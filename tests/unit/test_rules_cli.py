"""``sentinel rules list|check FILE``: a valid file is described, a bad one refused with the
rule and parameter named, exit status 1."""

from __future__ import annotations

import pytest

from infra.cli import main

pytestmark = pytest.mark.unit


def test_check_accepts_the_committed_rules_file(capsys):
    assert main(["rules", "check"]) == 0
    assert "74 active rules" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('version = "x"\n[rules.nope]\nweight = 1.0\n', "unknown rule 'nope'"),
        ('version = "x"\n[rules.bulk_order]\nparams = {max_quantity = "ten"}\n',
         "rules.bulk_order.params.max_quantity: expected int, got str"),
        ('version = "x"\n[rules.bulk_order]\nparams = {max_qty = 3}\n', "max_qty"),
    ],
)
def test_check_refuses_a_bad_file_naming_rule_and_parameter(tmp_path, capsys, text, message):
    path = tmp_path / "rules.toml"
    path.write_text(text)
    assert main(["rules", "check", str(path)]) == 1
    assert message in capsys.readouterr().err


def test_list_shows_an_organizers_overrides(capsys):
    assert main(["rules", "list", "--organizer", "org_stadium_tour"]) == 0
    out = capsys.readouterr().out
    assert "quantity_over_limit" in out and "policy: 2FA >" in out
