"""``sentinel worker`` with a SENTINEL_DATA_DIR that does not exist yet creates it and works
(Faust alone died with FileNotFoundError)."""

from __future__ import annotations

import pytest

from infra import topics
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from tests.support.kafka import Worker, produce, read_until
from tests.support.records import purchase

pytestmark = pytest.mark.integration


def test_worker_creates_a_missing_data_dir_and_decides(settings, env, tmp_path):
    data_dir = tmp_path / "not" / "there" / "yet"
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.PURCHASES)
    produce(settings, topics.PURCHASES, [(p["wallet"], codec.encode(p))
                                         for p in (purchase(n) for n in range(3))])
    worker = Worker({**env, "SENTINEL_DATA_DIR": str(data_dir)}, tmp_path / "worker.log")
    try:
        decisions = read_until(settings, topics.DECISIONS, lambda m: len(m) >= 3, 90,
                               worker.assert_alive)
    finally:
        worker.stop()
    assert len(decisions) == 3
    assert (data_dir / "faust").is_dir()
    assert "FileNotFoundError" not in (tmp_path / "worker.log").read_text(errors="replace")
