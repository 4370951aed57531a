"""The gateway's probes on real Kafka, Redis and PostgreSQL and a real worker: /healthz is 200
only while every part of the pipeline answers (PostgreSQL, and a worker in its consumer
group) and names what failed otherwise; /livez and /readyz stay about the gateway itself."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from infra.observe import free_port
from infra.settings import PostgresSettings, Settings, StreamSettings
from tests.conftest import app_id
from tests.integration.test_gateway import gateway_client
from tests.support.kafka import Worker

pytestmark = pytest.mark.integration


def _probe(
    settings: Settings, until=lambda r: True, timeout_s: float = 0.0
) -> dict[str, httpx.Response]:
    """GET the three probes (again until ``until(healthz)`` or ``timeout_s``)."""

    async def scenario() -> dict[str, httpx.Response]:
        async with gateway_client(settings) as client:
            deadline = time.monotonic() + timeout_s
            while True:
                answers = {p: await client.get(p) for p in ("/livez", "/readyz", "/healthz")}
                if until(answers["/healthz"]) or time.monotonic() > deadline:
                    return answers
                await asyncio.sleep(0.3)

    return asyncio.run(scenario())


def test_healthz_follows_the_worker_and_postgres(settings: Settings, env, tmp_path) -> None:
    settings = settings.model_copy(update={"stream": StreamSettings(app_id=app_id(settings))})
    before = _probe(settings)
    assert before["/livez"].status_code == 200 and before["/readyz"].status_code == 200
    assert before["/healthz"].status_code == 503
    assert before["/healthz"].json()["worker"]["alive"] is False
    assert before["/healthz"].json()["postgres"] is True

    worker = Worker(env, tmp_path / "worker.log")
    try:
        up = _probe(settings, lambda r: r.status_code == 200, 90)["/healthz"]
        worker.assert_alive()
        assert up.status_code == 200, up.text
        body = up.json()
        assert (body["kafka"], body["redis"], body["postgres"]) == (True, True, True)
        assert body["worker"]["alive"] is True and body["worker"]["members"] >= 1

        unreachable = PostgresSettings(url=f"postgresql://nobody@127.0.0.1:{free_port()}/none")
        no_db = _probe(settings.model_copy(update={"postgres": unreachable}))["/healthz"]
        assert no_db.status_code == 503
        assert no_db.json()["postgres"] is False and no_db.json()["worker"]["alive"] is True
    finally:
        worker.stop()

    gone = _probe(settings, lambda r: not r.json()["worker"]["alive"], 30)["/healthz"]
    assert gone.status_code == 503 and gone.json()["worker"]["alive"] is False
