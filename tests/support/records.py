"""Hand-built records for tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def purchase(n: int = 0, **overrides) -> dict:
    record = {
        "purchase_id": f"p-{n}",
        "occurred_at": T0 + timedelta(seconds=n),
        "wallet": f"0x{n:040x}",
        "user_id": f"u-{n}",
        "organizer_id": "org-1",
        "show_id": "show-1",
        "ticket_id": f"t-{n}",
        "quantity": 1,
        "unit_price_minor": 5_000,
        "currency": "USD",
        "channel": "PRIMARY",
        "payment_method": "CARD",
        "card_fingerprint": f"card-{n}",
        "ip": "203.0.113.7",
        "geo": {"lat": 52.52, "lon": 13.40, "country": "DE"},
        "device_id": f"dev-{n}",
    }
    record.update(overrides)
    return record


def recent_purchase(n: int = 0, **overrides) -> dict:
    """A purchase that happened an hour ago (plus ``n`` ms): within the edge's event-time
    bounds whenever the test runs."""
    hour_ago = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    return purchase(n, **{"occurred_at": hour_ago + timedelta(milliseconds=n), **overrides})
