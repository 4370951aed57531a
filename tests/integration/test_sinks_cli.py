"""``sentinel sink all`` in its own process: writes what arrives, stops on SIGTERM with exit
code 0, and a restart resumes from the committed offsets without duplicating rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import psycopg
import pytest

from infra import topics
from infra.process import stop_group
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from sinks.redis import kpi_bucket
from sinks.testing import T0, decision, wait_until
from tests.support.kafka import produce

pytestmark = pytest.mark.integration


class SinkProcess:
    def __init__(self, env: dict[str, str], log_path):
        self.log = open(log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "sink", "all"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"sink process exited with {self.proc.returncode}")

    def terminate(self, grace: float = 30.0) -> int:
        graceful = stop_group(self.proc, grace)
        self.log.close()
        if not graceful:
            raise subprocess.TimeoutExpired(self.proc.args, grace)
        return self.proc.returncode


def _count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM decisions").fetchone()[0]


def test_sink_all_stops_on_sigterm_and_resumes_without_duplicates(settings, env, pg_dsn,
                                                                 redis_client, tmp_path):
    env = {**env, "POSTGRES_URL": pg_dsn}
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.DECISIONS)
    tag = os.urandom(4).hex()
    day = T0 + timedelta(days=int(tag, 16) % 3000)  # KPI minutes of this test only
    values = [decision(n, purchase_id=f"{tag}-{n}", occurred_at=day + timedelta(seconds=n),
                       decided_at=day + timedelta(seconds=n)) for n in range(400)]
    encoded = [(v["wallet"], codec.encode(v)) for v in values]
    try:
        produce(settings, topics.DECISIONS, encoded[:200])
        first = SinkProcess(env, tmp_path / "sink.log")
        try:
            wait_until(lambda: first.alive() or _count(pg_dsn) == 200, 90, "first 200 rows")
        finally:
            assert first.terminate() == 0
        produce(settings, topics.DECISIONS, encoded[200:])
        second = SinkProcess(env, tmp_path / "sink.log")
        try:
            wait_until(lambda: second.alive() or _count(pg_dsn) == 400, 90, "all 400 rows")
            wait_until(lambda: redis_client.exists(f"sentinel:decision:{tag}-399"), 30, "redis")
        finally:
            assert second.terminate() == 0
        stored = json.loads(redis_client.get(f"sentinel:decision:{tag}-0"))
        assert stored["decision_id"] == "dec_p-0"
        assert _count(pg_dsn) == 400
        assert int(redis_client.hget(kpi_bucket(day), "total")) == 60  # seconds 0..59
    finally:
        keys = redis_client.keys(f"sentinel:decision:{tag}-*")
        keys += list({kpi_bucket(v["occurred_at"]) for v in values})
        if keys:
            redis_client.delete(*keys)
