"""The bootstrap's decisions: what is missing → what it installs, or the one line it prints."""

from __future__ import annotations

import subprocess
import sys

import pytest

from infra.bootstrap import NEEDS, Access, choose, describe, fatal, java_major
from infra.settings import REPO_ROOT

pytestmark = pytest.mark.unit
BY_NAME = {n.name: n for n in NEEDS}
EVERY_PACKAGE = frozenset(p for n in NEEDS for alt in n.apt for p in alt)


def needs(*names: str):
    return [BY_NAME[n] for n in names]


def test_nothing_missing_installs_nothing_and_says_nothing():
    plan = choose([], Access(apt=True, sudo=(), available=EVERY_PACKAGE))
    assert plan.packages == [] and plan.lines == []


def test_root_with_apt_installs_the_debian_packages_of_what_is_missing():
    plan = choose(needs("redis-server", "postgresql", "npm", "promtool", "chromium"),
                  Access(apt=True, sudo=(), available=EVERY_PACKAGE))
    assert plan.packages == ["redis-server", "postgresql", "nodejs", "npm", "prometheus",
                             "chromium"]
    assert plan.lines == []


def test_the_first_available_alternative_is_chosen():
    offered = EVERY_PACKAGE - {"openjdk-17-jre-headless", "docker-compose"}
    plan = choose(needs("java17", "docker-compose"), Access(True, ("sudo", "-n"), offered))
    assert plan.packages == ["default-jre-headless", "docker-compose-v2"]


def test_a_need_without_a_package_here_gets_one_line_and_the_rest_is_installed():
    offered = EVERY_PACKAGE - {"chromium"}
    plan = choose(needs("redis-server", "chromium"), Access(True, (), offered))
    assert plan.packages == ["redis-server"]
    assert plan.lines == ["missing chromium: no apt package for it here (chromium); "
                          "install Chromium (headless browser tests of the console)"]


def test_without_root_or_sudo_nothing_is_installed_and_each_need_says_the_command():
    plan = choose(needs("redis-server", "postgresql"), Access(apt=True, sudo=None))
    assert plan.packages == []
    assert plan.lines[0].startswith("missing redis-server: run as root (or with sudo): "
                                    "apt-get install redis-server; or install Redis 7")
    assert len(plan.lines) == 2


def test_without_apt_the_line_says_how_to_get_it_by_hand():
    plan = choose(needs("postgresql"), Access(apt=False, sudo=()))
    assert plan.lines == ["missing postgresql: install PostgreSQL 15+ server binaries or set "
                          "POSTGRES_URL to a running server"]


def test_a_failed_install_is_named_after_the_fact():
    line = describe(BY_NAME["maven"], Access(True, (), EVERY_PACKAGE))
    assert line == ("missing maven: apt-get install maven did not provide it; install Apache "
                    "Maven (mvn on PATH) (Kafka runs on Tansu instead (memory only))")


def test_only_needs_of_the_purpose_without_a_stand_in_stop_make():
    still = needs("java17", "maven", "chromium", "redis-server")
    assert fatal(still, "run") == needs("redis-server")
    assert fatal(still, "test") == needs("chromium", "redis-server")


@pytest.mark.parametrize(("output", "major"), [
    ('openjdk version "17.0.15" 2025-04-15', 17),
    ('java version "1.8.0_392"', 8),
    ('openjdk version "21" 2023-09-19', 21),
    ("bash: java: not found", None),
])
def test_java_major_version_is_read_from_java_version(output, major):
    assert java_major(output) == major


def test_the_check_on_this_machine_prints_only_missing_lines_never_a_traceback():
    done = subprocess.run([sys.executable, "-m", "infra.bootstrap", "--for", "test", "--check"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert all(line.startswith("missing ") for line in lines), lines
    assert done.returncode == 0 if not lines else done.returncode in (0, 1)
