"""System packages for ``make run`` and ``make test`` on a fresh machine (Debian/Ubuntu).

    python3 -m infra.bootstrap --for run|test [--check]

Runs before ``.venv`` exists, with whatever ``python3`` the machine has: standard library only.
It looks for each program Sentinel needs (``NEEDS``), installs the missing ones with
``apt-get`` (as root, or through ``sudo``), and names in one line each what it could not
install and how to get it. Exit 1 when something the purpose needs is still missing (make
stops there), 0 otherwise. ``choose`` holds the decisions as a pure function.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

PYTHONS = ((3, 11), (3, 12))  # pyproject.toml: requires-python >=3.11,<3.13


@dataclass(frozen=True)
class Need:
    """One program Sentinel needs, how Debian provides it, and how to get it otherwise."""

    name: str
    purpose: str  # "run": make run and make test; "test": make test only
    apt: tuple[tuple[str, ...], ...]  # alternatives, first available wins
    manual: str  # how to get it without apt-get
    fallback: str = ""  # what happens without it, when something stands in (not fatal)


NEEDS: tuple[Need, ...] = (
    Need("python3-venv", "run", (("python3-venv",),), "install your Python's venv module"),
    Need("redis-server", "run", (("redis-server",),),
         "install Redis 7 (redis-server on PATH) or set REDIS_URL to a running server"),
    Need("postgresql", "run", (("postgresql",),),
         "install PostgreSQL 15+ server binaries or set POSTGRES_URL to a running server"),
    Need("java17", "run", (("openjdk-17-jre-headless",), ("default-jre-headless",)),
         "install a Java 17+ runtime (java on PATH)",
         fallback="Kafka runs on Tansu instead (memory only)"),
    Need("maven", "run", (("maven",),), "install Apache Maven (mvn on PATH)",
         fallback="Kafka runs on Tansu instead (memory only)"),
    Need("cargo", "run", (("cargo",),),
         "install Rust with cargo (https://rustup.rs): it builds processors/native and schemas/native"),
    Need("npm", "run", (("nodejs", "npm"),),
         "install Node.js 18+ with npm (for the local EVM node and the contracts)"),
    Need("docker-compose", "test", (("docker-compose",), ("docker-compose-v2",)),
         "install docker-compose (used to check docker-compose.yml)"),
    Need("promtool", "test", (("prometheus",),),
         "install Prometheus' promtool (checks the alert rules)"),
    Need("chromium", "test", (("chromium",),),
         "install Chromium (headless browser tests of the console)"),
)


@dataclass(frozen=True)
class Access:
    """What this machine lets us do: apt-get present, how to become root, what apt offers."""

    apt: bool
    sudo: tuple[str, ...] | None  # () as root, ("sudo", ...) through sudo, None: no way
    available: frozenset[str] | None = None  # installable packages; None: not asked


@dataclass
class Plan:
    packages: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # one per need we cannot install


def choose(missing: Sequence[Need], access: Access) -> Plan:
    """What to install for ``missing`` and what to tell about the rest (pure)."""
    plan = Plan()
    for need in missing:
        packages = _pick(need, access)
        if packages:
            plan.packages += [p for p in packages if p not in plan.packages]
        else:
            plan.lines.append(describe(need, access))
    return plan


def _pick(need: Need, access: Access) -> tuple[str, ...] | None:
    if not access.apt or access.sudo is None or access.available is None:
        return None
    for alternative in need.apt:
        if set(alternative) <= access.available:
            return alternative
    return None


def describe(need: Need, access: Access) -> str:
    """The one line for a need we cannot install here."""
    first = " ".join(need.apt[0])
    if not access.apt:
        how = need.manual
    elif access.sudo is None:
        how = f"run as root (or with sudo): apt-get install {first}; or {need.manual}"
    elif access.available is None:
        how = f"apt-get could not be asked (apt-get update failed); {need.manual}"
    elif any(set(alt) <= access.available for alt in need.apt):
        how = f"apt-get install {first} did not provide it; {need.manual}"
    else:
        how = f"no apt package for it here ({first}); {need.manual}"
    tail = f" ({need.fallback})" if need.fallback else ""
    return f"missing {need.name}: {how}{tail}"


def fatal(lines_for: Sequence[Need], purpose: str) -> list[Need]:
    """Needs still missing that ``purpose`` cannot do without (a fallback is not fatal)."""
    wanted = {"run"} if purpose == "run" else {"run", "test"}
    return [n for n in lines_for if n.purpose in wanted and not n.fallback]


def java_major(version_output: str) -> int | None:
    """The major version from ``java -version`` ("1.8.0_392" → 8, "17.0.15" → 17)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


# ---------------------------------------------------------------- probing the machine


def _has_java17() -> bool:
    if not shutil.which("java"):
        return False
    out = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
    return (java_major(out.stderr + out.stdout) or 0) >= 17


def _has_postgres() -> bool:
    return bool(glob.glob("/usr/lib/postgresql/*/bin/postgres")) or bool(shutil.which("postgres"))


def _has_compose() -> bool:
    if shutil.which("docker-compose"):
        return True
    if not shutil.which("docker"):
        return False
    out = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return out.returncode == 0


PRESENT: dict[str, Callable[[], bool]] = {
    "python3-venv": lambda: importlib.util.find_spec("ensurepip") is not None,
    "redis-server": lambda: bool(shutil.which("redis-server")),
    "postgresql": _has_postgres,
    "java17": _has_java17,
    "maven": lambda: bool(shutil.which("mvn")),
    "cargo": lambda: bool(shutil.which("cargo")),
    "npm": lambda: bool(shutil.which("npm")),
    "docker-compose": _has_compose,
    "promtool": lambda: bool(shutil.which("promtool")),
    "chromium": lambda: bool(shutil.which("chromium") or shutil.which("chromium-browser")),
}


def missing_needs(purpose: str) -> list[Need]:
    wanted = {"run"} if purpose == "run" else {"run", "test"}
    return [n for n in NEEDS if n.purpose in wanted and not PRESENT[n.name]()]


def access_here() -> Access:
    apt = bool(shutil.which("apt-get"))
    if os.geteuid() == 0:
        return Access(apt, ())
    if shutil.which("sudo"):
        quiet = subprocess.run(["sudo", "-n", "true"], capture_output=True, check=False)
        if quiet.returncode == 0:
            return Access(apt, ("sudo", "-n"))
        if sys.stdin.isatty():
            return Access(apt, ("sudo",))  # it will ask for the password
    return Access(apt, None)


def _apt(access: Access, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    argv = [*(access.sudo or ()), "apt-get", *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, check=False)


def _available(needs: Sequence[Need]) -> frozenset[str]:
    names = {p for need in needs for alt in need.apt for p in alt}
    found = set()
    for name in sorted(names):
        out = subprocess.run(["apt-cache", "show", "--no-all-versions", name],
                             capture_output=True, text=True, check=False)
        if out.returncode == 0 and "Version:" in out.stdout:
            found.add(name)
    return frozenset(found)


def install(missing: Sequence[Need], access: Access) -> Access:
    """apt-get update, see what is offered, install the plan; returns the access used."""
    if not (access.apt and access.sudo is not None):
        return access
    update = _apt(access, "update", "-qq")
    if update.returncode != 0:
        print(f"apt-get update failed: {_last_line(update.stderr)}")
        return Access(access.apt, access.sudo, None)
    access = Access(access.apt, access.sudo, _available(missing))
    plan = choose(missing, access)
    if plan.packages:
        print(f"installing system packages: {' '.join(plan.packages)}", flush=True)
        done = _apt(access, "install", "-y", "-qq", "--no-install-recommends", *plan.packages)
        if done.returncode != 0:
            print(f"apt-get install failed: {_last_line(done.stderr)}")
    return access


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no message)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="infra.bootstrap", description=__doc__.split("\n")[0])
    parser.add_argument("--for", dest="purpose", choices=["run", "test"], default="test")
    parser.add_argument("--check", action="store_true", help="only say what is missing")
    args = parser.parse_args(argv)
    purpose = args.purpose
    if sys.version_info[:2] not in PYTHONS:
        found = ".".join(map(str, sys.version_info[:2]))
        print(f"missing Python 3.11 or 3.12 (this python3 is {found}): install one and run "
              "make PYTHON=python3.11 ...")
        return 1
    missing = missing_needs(purpose)
    if not missing:
        return 0
    access = access_here()
    if not args.check:
        access = install(missing, access)
    still = missing_needs(purpose)
    for need in still:
        print(describe(need, access))
    return 1 if fatal(still, purpose) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (OSError, subprocess.SubprocessError) as exc:  # one line, never a traceback
        print(f"bootstrap failed: {exc}")
        sys.exit(1)
