"""Webhook signatures and log-safe IPs."""

from __future__ import annotations

import pytest

from connectors.security_events import redact_ip, security_event
from connectors.signature import AuthFailed, sign, signed_headers, verify

pytestmark = pytest.mark.unit
BODY, NOW = b'{"a": 1}', 1_800_000_000


def reason(headers: dict, secrets=(b"s1",), body: bytes = BODY) -> str | None:
    try:
        verify(headers, body, list(secrets), 300, now=NOW)
    except AuthFailed as exc:
        return exc.reason
    return None


def test_signature_over_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(b"s1", b"1800000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(b"s1", NOW, BODY) == expected
    assert reason(signed_headers(b"s1", BODY, NOW)) is None


def test_rotation_tolerance_and_failures() -> None:
    good = signed_headers(b"s2", BODY, NOW - 299)
    assert reason(good, secrets=(b"s1", b"s2")) is None
    assert reason(good) == "bad_signature"
    assert reason(signed_headers(b"s1", BODY, NOW - 301)) == "stale_timestamp"
    assert reason(signed_headers(b"s1", BODY, NOW + 301)) == "stale_timestamp"
    assert reason(signed_headers(b"s1", BODY, NOW), body=BODY + b" ") == "bad_signature"
    assert reason({}) == "missing_headers"
    stamp = signed_headers(b"s1", BODY, NOW)
    assert reason({**stamp, "X-Sentinel-Timestamp": "1.8e9"}) == "malformed_timestamp"
    assert reason({**stamp, "X-Sentinel-Signature": "é" * 64}) == "bad_signature"
    prefixed = {**stamp, "X-Sentinel-Signature": "sha256=" + stamp["X-Sentinel-Signature"]}
    assert reason(prefixed) is None


def test_ips_are_truncated_for_logs_and_events_keep_them() -> None:
    assert redact_ip("203.0.113.77") == "203.0.113.0/24"
    assert redact_ip("2001:db8:1234:5678::1") == "2001:db8:1234::/48"
    assert (redact_ip(None), redact_ip("nope")) == ("-", "invalid")
    event = security_event("webhook_auth_failed", "MEDIUM", ip="203.0.113.77",
                           details={"reason": "stale", "n": 3})  # fmt: skip
    assert event["ip"] == "203.0.113.77" and event["details"] == {"reason": "stale", "n": "3"}
