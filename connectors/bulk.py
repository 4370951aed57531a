"""Bulk loads: a JSONL file of records through a ``Publisher``, with progress and a summary.

A line is either a bare record or the simulator's envelope ``{"kind": ..., "record": ...}``;
envelopes of another kind are skipped. Bad lines are rejected with their line number and the
fields at fault, records the broker did not acknowledge are rejected with the broker's reason;
every other line was acknowledged when ``load_jsonl`` returns.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from connectors.base import DeliveryFailed, RecordKind, ValidationFailed
from connectors.publisher import Publisher
from connectors.validation import parse

# The simulator's envelope kinds (models/simulator.py) for each record kind.
ENVELOPE_KINDS = {"purchases": "purchase", "auth-events": "auth", "labels": "label"}


@dataclass(frozen=True)
class Rejection:
    line: int
    reasons: list[str]

    def __str__(self) -> str:
        return f"line {self.line}: {'; '.join(self.reasons)}"


@dataclass
class Summary:
    lines: int = 0
    accepted: int = 0
    skipped: int = 0
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len(self.rejections)

    def as_dict(self) -> dict:
        return {"lines": self.lines, "accepted": self.accepted, "rejected": self.rejected,
                "skipped": self.skipped,
                "rejections": [{"line": r.line, "reasons": r.reasons} for r in self.rejections]}  # fmt: skip


Progress = Callable[[Summary], None]


def _record(kind: RecordKind, line: bytes) -> bytes | dict | None:
    """The record of a line (None: another kind's envelope, skip it)."""
    if b'"record"' not in line:
        return line
    try:
        item = orjson.loads(line)
    except orjson.JSONDecodeError:
        return line  # let validation name the problem
    if not isinstance(item, dict) or set(item) != {"kind", "record"}:
        return line
    return item["record"] if item["kind"] == ENVELOPE_KINDS[kind.name] else None


def load_jsonl(
    publisher: Publisher,
    kind: RecordKind,
    path: Path,
    progress: Progress | None = None,
    every_s: float = 0.5,
) -> Summary:
    """Publish every valid line of ``path`` as ``kind``; wait for every delivery report."""
    loader = _Loader(publisher, kind)
    last = time.monotonic()
    with open(path, "rb") as lines:
        for line_no, line in enumerate(lines, start=1):
            loader.publish_line(line_no, line)
            if progress and time.monotonic() - last >= every_s:
                progress(loader.summary)
                last = time.monotonic()
    summary = loader.finish()
    if progress:
        progress(summary)
    return summary


class _Loader:
    """Counts lines, rejections and acknowledgements (from the publisher's poll thread)."""

    def __init__(self, publisher: Publisher, kind: RecordKind):
        self.publisher, self.kind = publisher, kind
        self.summary = Summary()
        self._in_flight = 0
        self._done = threading.Condition()

    def publish_line(self, line_no: int, line: bytes) -> None:
        self.summary.lines = line_no
        record = _record(self.kind, line) if line.strip() else None
        if record is None:
            self.summary.skipped += 1
            return
        try:
            record = parse(self.kind, record, bounds=self.publisher.bounds)
            future = self.publisher.send(self.kind, record, block=True)
        except ValidationFailed as exc:
            with self._done:
                self.summary.rejections.append(Rejection(line_no, [str(e) for e in exc.errors]))
            return
        with self._done:
            self._in_flight += 1
        future.add_done_callback(lambda f: self._delivered(line_no, f))

    def _delivered(self, line_no: int, future: Future) -> None:
        exc = future.exception()
        with self._done:
            if exc is None:
                self.summary.accepted += 1
            else:
                reason = exc.reason if isinstance(exc, DeliveryFailed) else repr(exc)
                self.summary.rejections.append(Rejection(line_no, [f"delivery failed: {reason}"]))
            self._in_flight -= 1
            self._done.notify_all()

    def finish(self) -> Summary:
        """Wait for every delivery report (each record has a delivery timeout)."""
        self.publisher.flush()
        with self._done:
            self._done.wait_for(lambda: self._in_flight == 0)
            self.summary.rejections.sort(key=lambda r: r.line)
        return self.summary
