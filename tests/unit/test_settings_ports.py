"""SENTINEL_PORT_OFFSET moves every default loopback port; an explicit endpoint wins."""

from __future__ import annotations

import pytest

from infra.settings import Settings

pytestmark = pytest.mark.unit
ENDPOINTS = ("KAFKA_BOOTSTRAP_SERVERS", "POSTGRES_URL", "REDIS_URL", "EVM_RPC_URL",
             "WEBHOOK_PORT", "SENTINEL_WEB_PORT")


@pytest.fixture(autouse=True)
def _no_endpoints(monkeypatch):
    for name in ENDPOINTS:
        monkeypatch.delenv(name, raising=False)


def test_without_offset_the_embedded_defaults(monkeypatch):
    monkeypatch.delenv("SENTINEL_PORT_OFFSET", raising=False)  # a private test stack sets it
    s = Settings()
    assert (s.kafka.port, s.postgres.port, s.redis.port, s.evm.port, s.webhook.port) == (
        19092, 15432, 16379, 18545, 8080)


def test_offset_moves_every_default_port(monkeypatch):
    monkeypatch.setenv("SENTINEL_PORT_OFFSET", "1000")
    s = Settings()
    assert s.kafka.bootstrap_servers == "127.0.0.1:20092"
    assert s.postgres.dsn == "postgresql://sentinel@127.0.0.1:16432/sentinel"
    assert s.redis.dsn == "redis://127.0.0.1:17379/0"
    assert s.evm.rpc_url == "http://127.0.0.1:19545"
    assert (s.webhook.port, s.stream.web_port) == (9080, 7066)


def test_an_endpoint_set_explicitly_is_not_moved(monkeypatch):
    monkeypatch.setenv("SENTINEL_PORT_OFFSET", "1000")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/2")
    assert Settings().redis.dsn == "redis://127.0.0.1:6379/2"
