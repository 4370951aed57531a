"""Event-time helpers: milliseconds since the epoch, durations, great-circle distance.

Everything in ``processors/`` measures time in integer milliseconds taken from the events
themselves; nothing here reads the wall clock.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
EARTH_RADIUS_KM = 6371.0088


def to_ms(value: datetime | int | None) -> int | None:
    """An event timestamp as integer ms since the epoch (UTC).

    Accepts the timezone-aware datetimes the Avro decoder yields, or an int already in ms.
    A naive datetime is refused: its zone is unknown.
    """
    if type(value) is datetime:  # the common case first (the Avro decoder's type)
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} (expected timezone-aware UTC)")
        # ``(value - _EPOCH) // _ONE_MS`` in small-int arithmetic (seconds and microseconds of a
        # timedelta are never negative, so the floor is the microseconds' alone)
        delta = value - _EPOCH
        return delta.days * DAY_MS + delta.seconds * SECOND_MS + delta.microseconds // 1_000
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} (expected timezone-aware UTC)")
        return (value - _EPOCH) // _ONE_MS
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"timestamp must be a datetime or int ms, got {type(value).__name__}")
    return value


def query_floor(floor_ms: int | None, watermark_ms: int) -> int:
    """The earliest event time a state may still be asked about: the floor a live reader
    announced (``advance_floor``), never past the state's own watermark; the watermark when
    no floor was announced (replay, in event time order)."""
    return watermark_ms if floor_ms is None or floor_ms > watermark_ms else floor_ms


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance between two points in kilometres. ``geo_distance_km`` is computed
    natively with these operations in this order (``processors/native/src/wallet.rs``); this
    one serves the frozen references in ``tests/support``."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))
