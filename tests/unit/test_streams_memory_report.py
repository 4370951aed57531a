"""The worker's memory breakdown (a debugging aid of the memory bench): sizes and the request file."""

from __future__ import annotations

import json
import sys

import pytest

from processors.state import Holding, WalletState
from streams import memory_report

pytestmark = pytest.mark.unit


def test_deep_size_counts_what_a_value_holds_and_each_object_once():
    shared = "x" * 1000
    one = [shared]
    two = [shared, shared]
    assert memory_report.deep_size(one) == sys.getsizeof(one) + sys.getsizeof(shared)
    assert memory_report.deep_size(two) == sys.getsizeof(two) + sys.getsizeof(shared)
    wallet = WalletState(address="0x" + "a" * 40, holdings={"t" * 50: Holding(1, 2)})
    assert memory_report.deep_size(wallet) > sys.getsizeof(wallet) + 50 + 42


def test_mapping_scales_the_sample_to_every_entry(monkeypatch):
    monkeypatch.setattr(memory_report, "SAMPLE", 10)
    data = {f"k{i:04d}": "v" * 100 for i in range(1000)}
    report = memory_report.mapping(data)
    per = sys.getsizeof("k0000") + sys.getsizeof("v" * 100)
    assert report["entries"] == 1000 and report["bytes_per_entry"] == per
    assert report["mb"] == round((sys.getsizeof(data) + 1000 * per) / 2**20, 1)


def test_a_report_is_written_only_when_asked_under_its_label(tmp_path):
    path = tmp_path / "breakdown.json"
    memory_report.answer(path, lambda: {"thing": {"entries": 1}})
    assert not path.exists()
    (tmp_path / "breakdown.json.want").write_text("half")
    memory_report.answer(path, lambda: {"thing": {"entries": 1}})
    (tmp_path / "breakdown.json.want").write_text("end")
    memory_report.answer(path, lambda: {"thing": {"entries": 2}})
    reports = json.loads(path.read_text())
    assert list(reports) == ["half", "end"] and not (tmp_path / "breakdown.json.want").exists()
    assert reports["end"]["parts"] == {"thing": {"entries": 2}}
    assert reports["half"]["process"]["VmRSS"] > 0
