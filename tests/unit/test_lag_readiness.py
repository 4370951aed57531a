"""When a consumer counts as caught up (``LagMonitor.readiness``): a fresh measurement in which
every waiting record is young enough; a stale or partial one is not ready."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from infra.lag import LagMonitor, PartitionLag

pytestmark = pytest.mark.unit


@dataclass
class Measured:
    """Stands in for ``LagProbe``: readiness only reads its group and timeout."""

    group: str = "g"
    timeout: float = 1.0


def _monitor(rows, age_s: float = 0.0) -> LagMonitor:
    monitor = LagMonitor(Measured(), interval_s=5.0)  # type: ignore[arg-type]
    monitor.rows, monitor.measured_at = rows, time.monotonic() - age_s
    return monitor


def _row(partition: int, records: int, seconds: float | None) -> PartitionLag:
    return PartitionLag("t", partition, 0, records, records, seconds)


def test_ready_when_every_waiting_record_is_young_enough():
    ok, details = _monitor([_row(0, 3, 2.0), _row(1, 0, 0.0)]).readiness(10)
    assert ok and details["lag_records"] == 3 and details["lag_seconds"] == 2.0


def test_not_ready_when_one_partition_is_behind():
    ok, details = _monitor([_row(0, 3, 2.0), _row(1, 900, 45.0)]).readiness(10)
    assert not ok and details["lag_seconds"] == 45.0


def test_not_ready_without_a_measurement_or_with_a_stale_or_partial_one():
    assert not LagMonitor(Measured(), 5.0).readiness(10)[0]  # type: ignore[arg-type]
    stale_ok, stale = _monitor([_row(0, 0, 0.0)], age_s=60).readiness(10)
    assert not stale_ok and stale["reason"] == "stale measurement"
    partial_ok, partial = _monitor([_row(0, 5, None)]).readiness(10)
    assert not partial_ok and "unreadable" in partial["reason"]
