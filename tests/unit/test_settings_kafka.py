"""Every librdkafka client Sentinel makes (consumers, producers, admin) is built on
``KafkaSettings.as_confluent()``."""

from __future__ import annotations

import pytest

from infra.settings import KafkaSettings

pytestmark = pytest.mark.unit


def test_every_client_sends_its_requests_without_nagles_delay() -> None:
    kafka = KafkaSettings(bootstrap_servers="127.0.0.1:9092")
    for conf in (kafka.as_confluent(), kafka.consumer_conf("g"), kafka.producer_conf()):
        assert conf["socket.nagle.disable"] is True
