"""``sentinel sink postgres`` on its operator port: while PostgreSQL is unreachable it says so
(``sentinel_sink_failing`` 1, retryable errors counted, /readyz 503); with PostgreSQL it
writes, times its writes, measures its group's lag and turns ready."""

from __future__ import annotations

import subprocess
import sys

import pytest

from infra import topics
from infra.observe import free_port
from infra.process import stop_group
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from sinks.testing import decision
from tests.support.http import sample, wait_for
from tests.support.kafka import produce

pytestmark = pytest.mark.integration


class Sink:
    def __init__(self, env: dict[str, str], log_path):
        self.log = open(log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "infra.cli", "sink", "postgres"],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)  # fmt: skip

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"sink exited with {self.proc.returncode}")

    def stop(self) -> None:
        stop_group(self.proc, 30)
        self.log.close()


def test_sink_reports_failing_backend_then_writes_and_turns_ready(settings, env, pg_dsn, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**env, "METRICS_SINK_POSTGRES_PORT": str(port), "METRICS_LAG_INTERVAL_S": "0.5",
           "METRICS_READY_MAX_LAG_S": "5"}  # fmt: skip
    down = Sink({**env, "POSTGRES_URL": f"postgresql://nobody@127.0.0.1:{free_port()}/none"},
                tmp_path / "sink-down.log")  # fmt: skip
    try:
        failing = wait_for(f"{base}/metrics",
                           lambda r: sample(r.text, "sentinel_sink_failing", sink="postgres") == 1,
                           30, down.alive).text  # fmt: skip
        assert sample(failing, "sentinel_sink_errors_total", sink="postgres", kind="retryable") >= 1
        assert wait_for(f"{base}/readyz", lambda r: r.status_code == 503, 10).status_code == 503
    finally:
        down.stop()

    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.DECISIONS)
    produce(settings, topics.DECISIONS, [(f"w{n}", codec.encode(decision(n))) for n in range(50)])
    up = Sink({**env, "POSTGRES_URL": pg_dsn}, tmp_path / "sink-up.log")
    try:
        ready = wait_for(f"{base}/readyz", lambda r: r.status_code == 200, 60, up.alive).json()
        assert ready["sinks"]["postgres"]["failing"] is False
        # Ready means within METRICS_READY_MAX_LAG_S, not caught up: the backlog drains after.
        caught_up = wait_for(f"{base}/readyz", lambda r: r.status_code == 200
                             and r.json()["sinks"]["postgres"]["lag"]["lag_records"] == 0, 30)  # fmt: skip
        assert caught_up.json()["sinks"]["postgres"]["failing"] is False
        text = wait_for(f"{base}/metrics", lambda r: sample(
            r.text, "sentinel_sink_records_total", sink="postgres") == 50, 30).text  # fmt: skip
        assert wait_for(f"{base}/healthz", lambda r: r.status_code == 200, 10)
    finally:
        up.stop()
    assert sample(text, "sentinel_sink_failing", sink="postgres") == 0
    assert sample(text, "sentinel_sink_write_seconds_count", sink="postgres") >= 1
    group = f"{settings.kafka.topic_prefix}sentinel-sink-postgres"
    lag = sample(text, "sentinel_consumer_lag_seconds", group=group, topic=topics.DECISIONS.name)
    assert lag is not None and lag <= 5
