"""Log-safe forms of personal identifiers."""

from __future__ import annotations

import pytest

from infra.logsafe import pseudonym, redact_ip, scrub

pytestmark = pytest.mark.unit


def test_ips_keep_their_network_only() -> None:
    assert redact_ip("203.0.113.77") == "203.0.113.0/24"
    assert redact_ip("::ffff:203.0.113.77") == "203.0.113.0/24"
    assert redact_ip("2001:db8:1234:5678::1") == "2001:db8:1234::/48"
    assert (redact_ip(None), redact_ip("nope")) == ("-", "invalid")


def test_pseudonyms_are_stable_distinct_and_not_the_value() -> None:
    a, b = pseudonym("user-42"), pseudonym("user-43")
    assert a == pseudonym("user-42") and a != b
    assert "user-42" not in a and a.startswith("~") and len(a) == 13
    assert pseudonym(b"user-42") == a and pseudonym(None) == pseudonym("") == "-"


def test_free_text_loses_its_ips_and_emails() -> None:
    text = ('invalid input syntax for type inet: "999.1.1.1"; peer 198.51.100.23 said hi to '
            "jane.doe+x@example.co.uk from 2001:db8:1:2::7 and fe80::1%eth0 at 12:00:01")
    out = scrub(text)
    for raw in ("198.51.100.23", "jane.doe", "2001:db8:1:2::7", "fe80::1"):
        assert raw not in out, raw
    assert "198.51.100.0/24" in out and "***@example.co.uk" in out and "12:00:01" in out
    assert scrub(ValueError("late purchase at 10.0.0.9")) == "late purchase at 10.0.0.0/24"
    assert scrub("Error 111 connecting to 127.0.0.1:6379") == "Error 111 connecting to 127.0.0.1:6379"
