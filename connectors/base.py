"""The contract shared by Sentinel's sources: typed errors, delivery reports and record kinds.

A source maps raw input (webhook JSON, a JSONL line, a dict from a backend service) to a typed
record once, at the edge (``connectors.validation``), and hands it to a ``Publisher``. What can
go wrong is data: ``ValidationFailed`` names each bad field, ``DeliveryFailed`` says whether a
retry may help, ``RateLimited`` carries ``retry_after_s``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from infra.topics import TopicSpec

if TYPE_CHECKING:
    from pydantic import BaseModel


@dataclass(frozen=True)
class FieldError:
    """One bad field: ``field`` is the dotted path (``geo.lat``), ``type`` a stable code."""

    field: str
    message: str
    type: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message, "type": self.type}

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ValidationFailed(ValueError):
    """A record the schema would reject; ``errors`` names every bad field."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


class DeliveryFailed(RuntimeError):
    """The broker did not acknowledge a record. ``retriable``: the same record may be resent."""

    def __init__(self, reason: str, *, retriable: bool = True):
        self.reason = reason
        self.retriable = retriable
        super().__init__(reason)


class RateLimited(Exception):
    """A limit was reached; the caller may retry after ``retry_after_s`` seconds."""

    def __init__(self, limit: str, retry_after_s: int):
        self.limit = limit
        self.retry_after_s = retry_after_s
        super().__init__(f"rate limit {limit!r} exceeded; retry after {retry_after_s} s")


@dataclass(frozen=True)
class Delivery:
    """Where the broker put an acknowledged record."""

    record_id: str
    topic: str
    partition: int
    offset: int
    key: str


@dataclass(frozen=True)
class RecordKind:
    """One kind of record a source accepts: its topic, model, key and identities.

    ``key`` picks the Kafka key (co-partitioning), ``record_id`` the id returned to callers,
    ``natural_key`` the idempotency key used when the caller sends none.
    """

    name: str
    spec: TopicSpec
    model: type[BaseModel]
    key: Callable[[Any], str]
    record_id: Callable[[Any], str]
    natural_key: Callable[[Any], str]
