"""``sentinel bench gateway`` runs end to end and writes its report (numbers not asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra import cli
from infra.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_bench_gateway_writes_a_report(settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    argv = ["bench", "gateway", "--out", str(out), "--duration", "1", "--rate", "50",
            "--concurrency", "4"]  # fmt: skip
    assert cli.main(argv) == 0
    report = json.loads(out.read_text())
    assert report["at_rate"] == 50 and report["accepted_per_s"] > 0
    assert set(report["latency_ms"]) >= {"p50", "p99"}
    assert report["full_speed"]["statuses"] == {"202": report["full_speed"]["requests"]}
    assert report["all_acknowledged_on_topic"]
