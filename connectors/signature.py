"""Webhook signatures: HMAC-SHA256 over ``f"{timestamp}.{idempotency_key}.{body}"``, hex,
with a tolerance.

The caller sends ``X-Sentinel-Timestamp`` (Unix seconds), ``X-Sentinel-Signature``
(lower-case hex, optionally prefixed ``sha256=``) and, optionally, ``Idempotency-Key``, which
is signed too (empty when absent): a captured request cannot be re-sent with a new key to be
published again. Keys contain no ``.`` (the gateway refuses them), so the signed text splits
one way only. Any of the configured secrets may match, so a secret can be rotated by
configuring the old and the new one for a while.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence

TIMESTAMP_HEADER = "X-Sentinel-Timestamp"
SIGNATURE_HEADER = "X-Sentinel-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


class AuthFailed(Exception):
    """Missing, malformed, stale or wrong signature; ``reason`` is a stable code."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(message)


def sign(secret: bytes, timestamp: int | str, body: bytes, idempotency_key: str = "") -> str:
    """The hex signature of ``body`` sent at ``timestamp`` with ``idempotency_key``."""
    signed = f"{timestamp}.{idempotency_key}.".encode() + body
    return hmac.new(secret, signed, hashlib.sha256).hexdigest()


def signed_headers(
    secret: bytes, body: bytes, timestamp: int | None = None, idempotency_key: str | None = None
) -> dict[str, str]:
    """The headers a caller sends with ``body`` (``timestamp`` defaults to now)."""
    ts = int(time.time()) if timestamp is None else timestamp
    headers = {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: sign(secret, ts, body,
                                                                 idempotency_key or "")}
    if idempotency_key:
        headers[IDEMPOTENCY_HEADER] = idempotency_key
    return headers


def verify(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[bytes],
    tolerance_s: int,
    now: float | None = None,
) -> None:
    """Return if ``body`` is signed by one of ``secrets`` recently enough; else ``AuthFailed``."""
    timestamp = headers.get(TIMESTAMP_HEADER)
    signature = headers.get(SIGNATURE_HEADER)
    if not timestamp or not signature:
        raise AuthFailed("missing_headers", f"{TIMESTAMP_HEADER} and {SIGNATURE_HEADER} required")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise AuthFailed("malformed_timestamp", f"{TIMESTAMP_HEADER} must be Unix seconds")
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance_s:
        raise AuthFailed("stale_timestamp", f"timestamp outside the {tolerance_s} s tolerance")
    given = signature.strip().removeprefix("sha256=").lower()
    key = headers.get(IDEMPOTENCY_HEADER) or ""
    if not given.isascii() or not any(
        hmac.compare_digest(sign(s, timestamp, body, key), given) for s in secrets
    ):
        raise AuthFailed("bad_signature", "signature does not match")
