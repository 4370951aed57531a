"""The one registry of Sentinel's Redis key names (as ``infra/topics.py`` is for topics).

Every key starts with ``sentinel:``; nothing else spells one. Keys written by a gateway under
a topic prefix (tests, tenants) add the prefix after ``sentinel:`` (``namespace``).
"""

from __future__ import annotations

ROOT = "sentinel"


def namespace(prefix: str = "") -> str:
    """``sentinel:`` plus a topic prefix, for the gateway's own keys."""
    return f"{ROOT}:{prefix}"


def decision(purchase_id: str) -> str:
    """The latest decision of a purchase (Redis sink; ``GET /v1/decisions/{id}``)."""
    return f"{ROOT}:decision:{purchase_id}"


# Pub/sub channel: the Redis sink publishes a purchase id when it stores its decision, so that
# long-polling readers (GET /v1/decisions/{id}?wait_ms=) wait on a subscription, not a loop.
DECISION_STORED = f"{ROOT}:decision-stored"


def kpi(minute: str) -> str:
    """Per-minute KPI hash, ``minute`` as ``yyyymmddHHMM`` (event time)."""
    return f"{ROOT}:kpi:{minute}"


def locked(user_id: str) -> str:
    """An account locked by the SIEM (JSON reason, expiring)."""
    return f"{ROOT}:locked:{user_id}"


def blocklist(kind: str, ns: str = ROOT) -> str:
    """Sorted set of blocked wallets or IPs, scored by expiry (ms)."""
    return f"{ns}:blocklist:{kind}"


def blocklist_meta(kind: str, ns: str = ROOT) -> str:
    return f"{ns}:blocklist:{kind}:meta"


def offences(kind: str, target: str, ns: str = ROOT) -> str:
    """Repeat-offender count of an automated response target."""
    return f"{ns}:offences:{kind}:{target}"


def rate_limit(ns: str, kind: str, value: str | None = None) -> str:
    """A rate-limit window of the gateway (``ns`` from ``namespace``)."""
    return f"{ns}rl:{kind}" if value is None else f"{ns}rl:{kind}:{value}"


def idempotency(ns: str, kind: str, digest: str) -> str:
    return f"{ns}idem:{kind}:{digest}"


def console_login_failures(who: str) -> str:
    """Failed console logins of a user name or a client network, expiring after 15 minutes."""
    return f"{ROOT}:console:login-failures:{who}"
