"""``sentinel bench codec``: its report, on a small simulated sample."""

from __future__ import annotations

import pytest

from models.codec_bench import run

pytestmark = pytest.mark.unit


def test_the_report_compares_the_codec_with_fastavro_on_the_same_values(tmp_path):
    report = run(purchases=120, seed=11, repeat=1, registry_path=tmp_path / "r.json")
    for kind in ("purchase", "decision"):
        part = report[kind]
        assert part["values"] >= 100, part
        assert part["bytes_differing"] == 0 and part["values_differing"] == 0
        for way in ("encode", "decode"):
            assert part[way]["codec"]["cpu_us"] > 0 and part[way]["fastavro"]["cpu_us"] > 0
            assert part[way]["ratio_to_fastavro_cpu"] == pytest.approx(
                part[way]["codec"]["cpu_us"] / part[way]["fastavro"]["cpu_us"], rel=1e-3)
