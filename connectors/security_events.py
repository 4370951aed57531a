"""Security events the edge emits (``sentinel.security-events.v1``) and log-safe identifiers.

Events carry the raw source IP (the SIEM blocks IPs); logs never do (``infra.logsafe``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

Severity = Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"]
WEBHOOK_AUTH_FAILED = "webhook_auth_failed"
RATE_LIMIT_EXCEEDED = "rate_limit_exceeded"


def security_event(
    kind: str,
    severity: Severity,
    *,
    source: str = "webhook",
    ip: str | None = None,
    wallet: str | None = None,
    user_id: str | None = None,
    purchase_id: str | None = None,
    details: Mapping[str, object] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A SecurityEvent record (Avro dict) with a fresh id; ``now`` defaults to the clock."""
    occurred = now or datetime.now(UTC)
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": int(occurred.timestamp() * 1000),
        "kind": kind,
        "severity": severity,
        "source": source,
        "ip": ip,
        "wallet": wallet,
        "user_id": user_id,
        "purchase_id": purchase_id,
        "details": {k: str(v) for k, v in (details or {}).items()},
    }


def event_key(event: dict[str, Any]) -> str:
    """The topic's key: source IP, else wallet, else the event id."""
    return event.get("ip") or event.get("wallet") or event["event_id"]
