"""The sink contract (quix-streams' ``BatchingSink`` shape): ``setup()`` connects and proves it,
``write(batch)`` writes a whole batch idempotently or raises a typed ``SinkError``.

How the runner (``sinks/runner.py``) treats each error:

- ``RETRYABLE`` (``SinkUnavailableError``, ``SinkBackpressureError``): the same batch is
  written again after a backoff (``retry_after`` for back-pressure); nothing is committed
  until it succeeds.
- ``SinkRecordError``: the sink refuses some record of the batch (a constraint, a value out of
  range). The runner splits the batch until it finds the record, dead-letters it with the
  reason and writes the rest.
- any other ``SinkError``: fatal (a missing table, a bug); the loop stops without committing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from infra.topics import TopicSpec


class SinkError(Exception):
    """A sink could not write a batch; subclasses say what the caller should do."""


class SinkUnavailableError(SinkError):
    """The backend is unreachable or lost the connection: retry the same batch later."""


class SinkBackpressureError(SinkError):
    """The backend asks to slow down: retry the same batch after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


class SinkRecordError(SinkError):
    """The backend refused the data itself; retrying the same batch cannot succeed."""


RETRYABLE: tuple[type[SinkError], ...] = (SinkUnavailableError, SinkBackpressureError)


@dataclass(frozen=True, slots=True)
class Record:
    """One decoded message with where it came from (for dead letters and commits)."""

    spec: TopicSpec
    value: dict[str, Any]
    key: bytes | None
    topic: str
    partition: int
    offset: int
    raw: bytes | None = None
    # Read again on start-up to rebuild state (``BatchSink.rewind_ms``); already handled by
    # an earlier run, which committed it.
    replayed: bool = False
    # The Kafka record timestamp (epoch ms): when the record was produced, if the broker says.
    timestamp_ms: int | None = None


class BatchSink(ABC):
    """Write batches of decoded records of ``topics`` somewhere, idempotently."""

    name: str = "sink"
    topics: tuple[TopicSpec, ...] = ()
    # > 0: on assignment, start this far (record time) before the committed offsets, so a
    # stateful sink rebuilds its windows; those records arrive with ``replayed=True``.
    rewind_ms: int = 0

    @abstractmethod
    def setup(self) -> None:
        """Connect and prove the connection works; raise ``SinkError`` if not."""

    @abstractmethod
    def write(self, batch: Sequence[Record]) -> None:
        """Write every record of ``batch`` or raise ``SinkError``; safe to call again."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
