"""SECURITY.md links each threat to the tests that show its mitigation: every link names a
test that exists, and every threat has one."""

from __future__ import annotations

import ast
import re

import pytest

from infra.settings import REPO_ROOT

pytestmark = pytest.mark.unit
LINK = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def test_every_linked_test_exists() -> None:
    text = (REPO_ROOT / "SECURITY.md").read_text()
    links = LINK.findall(text)
    assert len(links) >= 20
    for path, name in links:
        tree = ast.parse((REPO_ROOT / path).read_text())
        defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert name in defined, f"SECURITY.md links {path}::{name}, which does not exist"


def test_every_threat_names_a_test_or_says_it_is_not_mitigated() -> None:
    text = (REPO_ROOT / "SECURITY.md").read_text()
    threats = re.split(r"^### ", text, flags=re.M)[1:]
    assert len(threats) >= 9
    for threat in threats:
        title = threat.splitlines()[0]
        assert LINK.search(threat) or "Not mitigated" in threat, title
