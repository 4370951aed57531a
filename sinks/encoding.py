"""JSON for jsonb columns, Redis values and webhooks: timestamps as epoch milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def to_json(value: Any) -> str:
    """JSON for jsonb columns and Redis: timestamps become epoch milliseconds."""
    return orjson.dumps(value, default=_default, option=_OPTIONS).decode()


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return epoch_ms(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_ms(value: datetime) -> int:
    """Exact milliseconds since the epoch (no float rounding) of an aware datetime."""
    return (value - EPOCH) // timedelta(milliseconds=1)
