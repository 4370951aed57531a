"""Webhook signatures and log-safe IPs."""

from __future__ import annotations

import pytest

from connectors.security_events import security_event
from connectors.signature import AuthFailed, sign, signed_headers, verify

pytestmark = pytest.mark.unit
BODY, NOW = b'{"a": 1}', 1_800_000_000


def reason(headers: dict, secrets=(b"s1",), body: bytes = BODY) -> str | None:
    try:
        verify(headers, body, list(secrets), 300, now=NOW)
    except AuthFailed as exc:
        return exc.reason
    return None


def test_signature_over_timestamp_key_and_body() -> None:
    import hashlib
    import hmac

    keyless = hmac.new(b"s1", b"1800000000.." + BODY, hashlib.sha256).hexdigest()
    assert sign(b"s1", NOW, BODY) == keyless
    keyed = hmac.new(b"s1", b"1800000000.k-1." + BODY, hashlib.sha256).hexdigest()
    assert sign(b"s1", NOW, BODY, "k-1") == keyed
    assert reason(signed_headers(b"s1", BODY, NOW)) is None


def test_the_idempotency_key_is_covered_by_the_signature() -> None:
    headers = signed_headers(b"s1", BODY, NOW, idempotency_key="k-1")
    assert headers["Idempotency-Key"] == "k-1" and reason(headers) is None
    assert reason({**headers, "Idempotency-Key": "k-2"}) == "bad_signature"  # a new key
    unkeyed = {k: v for k, v in headers.items() if k != "Idempotency-Key"}
    assert reason(unkeyed) == "bad_signature"
    assert reason({**signed_headers(b"s1", BODY, NOW), "Idempotency-Key": "k-3"}) == (
        "bad_signature")  # a key added to a request signed without one


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


def test_events_keep_the_raw_ip() -> None:
    event = security_event("webhook_auth_failed", "MEDIUM", ip="203.0.113.77",
                           details={"reason": "stale", "n": 3})  # fmt: skip
    assert event["ip"] == "203.0.113.77" and event["details"] == {"reason": "stale", "n": "3"}
