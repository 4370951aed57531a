"""Kafka with SASL/SCRAM and ACLs, as docker-compose.yml deploys it, on a broker of this test's
own (Apache Kafka, KRaft, ``infra/kafka/sasl.properties``): only the gateway and the chain
listener write source topics, only the worker writes decisions, nobody gets in without a
password, and the real worker decides a purchase with nothing but its own grants."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from infra import admin, topics
from infra.kafka import acls, broker, secure
from infra.settings import KafkaSettings, Settings
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from tests.conftest import app_id
from tests.integration.test_gateway_outage import _two_free_ports
from tests.support.kafka import Worker
from tests.support.records import recent_purchase

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Secured:
    def __init__(self, settings: Settings, passwords: dict[str, str]):
        self.settings, self.passwords = settings, passwords

    def as_(self, principal: str) -> Settings:
        return secure.as_principal(self.settings, principal, self.passwords[principal])


@pytest.fixture
def secured(settings: Settings, monkeypatch) -> Iterator[Secured]:
    home = Path(tempfile.mkdtemp(prefix="sentinel-sasl-"))
    shared_libs = settings.stream.data_dir / "kafka" / "libs"
    if shared_libs.is_dir():
        (home / "libs").symlink_to(shared_libs)
    port = _two_free_ports()
    passwords = {p: secrets.token_hex(16) for p in (*acls.PRINCIPALS, "admin", "controller")}
    monkeypatch.setenv("KAFKA_ADMIN_PASSWORD", passwords["admin"])
    monkeypatch.setenv("KAFKA_CONTROLLER_PASSWORD", passwords["controller"])
    secure.prepare(port, home, passwords["admin"])
    log = open(home / "broker.out", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(broker.command(home), cwd=home, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    kafka = KafkaSettings(**{**settings.kafka.model_dump(),
                             "bootstrap_servers": f"127.0.0.1:{port}"})  # fmt: skip
    stream = settings.stream.model_copy(update={"app_id": app_id(settings)})
    here = Secured(settings.model_copy(update={"kafka": kafka, "stream": stream}), passwords)
    try:
        _wait(lambda: _answers(here.as_("admin")) or process.poll() is not None, 120)
        assert process.poll() is None, (home / "broker.out").read_text()[-3000:]
        acls.setup(here.as_("admin"), {p: passwords[p] for p in acls.PRINCIPALS})
        admin.create_topics(here.as_("admin"))
        yield here
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()
        shutil.rmtree(home, ignore_errors=True)


def _answers(settings: Settings) -> bool:
    try:
        AdminClient(settings.kafka.as_confluent()).list_topics(timeout=2)
        return True
    except KafkaException:
        return False


def _wait(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s"
        time.sleep(0.2)


def _produce(settings: Settings, spec: topics.TopicSpec, value: bytes = b"x") -> str | None:
    """None when the broker acknowledged the record, else the error's name."""
    errors: list = []
    producer = Producer(settings.kafka.producer_conf(**{"message.timeout.ms": 10_000}))
    name = topics.full_name(spec, settings.kafka.topic_prefix)
    producer.produce(name, value, b"k", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(15)
    return errors[0].name() if errors and errors[0] else None


def test_each_principal_writes_only_its_own_topics(secured: Secured) -> None:
    allowed = {
        "gateway": (topics.PURCHASES, topics.AUTH_EVENTS, topics.LABELS, topics.SECURITY_EVENTS),
        "chain": (topics.CHAIN_TRANSFERS, topics.SECURITY_EVENTS),
        "worker": (topics.DECISIONS, topics.SECURITY_EVENTS, topics.dlq(topics.PURCHASES)),
        "sink": (topics.ALERTS, topics.dlq(topics.DECISIONS)),
    }
    refused = {
        "gateway": (topics.DECISIONS, topics.CHAIN_TRANSFERS, topics.ALERTS),
        "chain": (topics.PURCHASES, topics.DECISIONS),
        "worker": (topics.PURCHASES, topics.AUTH_EVENTS, topics.LABELS, topics.ALERTS),
        "sink": (topics.PURCHASES, topics.DECISIONS, topics.SECURITY_EVENTS),
        "registry": (topics.PURCHASES,),
    }
    for principal, specs in allowed.items():
        for spec in specs:
            assert _produce(secured.as_(principal), spec) is None, (principal, spec.name)
    for principal, specs in refused.items():
        for spec in specs:
            assert _produce(secured.as_(principal), spec) == "TOPIC_AUTHORIZATION_FAILED", (
                principal, spec.name)  # fmt: skip
    assert not _answers(secured.settings)  # no SASL at all: nobody gets in
    assert not _answers(secure.as_principal(secured.settings, "gateway", "not-the-password"))


def test_the_real_worker_decides_with_only_its_own_grants(secured: Secured, tmp_path) -> None:
    gateway, sink = secured.as_("gateway"), secured.as_("sink")
    kafka = secured.as_("worker").kafka
    env = {**_base_env(secured.settings), "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
           "KAFKA_SASL_MECHANISM": acls.MECHANISM, "KAFKA_SASL_USERNAME": "worker",
           "KAFKA_SASL_PASSWORD": kafka.sasl_password.get_secret_value()}  # fmt: skip
    worker = Worker(env, tmp_path / "worker.log")
    try:
        from connectors.publisher import Publisher

        purchase_id = f"p-{uuid.uuid4().hex}"
        with Publisher(gateway) as publisher:
            publisher.publish_purchase(recent_purchase(1, purchase_id=purchase_id)).result(30)
        codec = AvroCodec.for_topic(registry_from_settings(sink), topics.DECISIONS)
        group = f"{sink.kafka.topic_prefix}sentinel-sink-acl-check"
        consumer = Consumer(sink.kafka.consumer_conf(group))
        consumer.subscribe([topics.full_name(topics.DECISIONS, sink.kafka.topic_prefix)])
        deadline, decided = time.monotonic() + 180, None
        while decided is None and time.monotonic() < deadline:
            worker.assert_alive()
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                decided = codec.decode(msg.value())
            assert msg is None or msg.error() is None or msg.error().retriable(), msg.error()
        consumer.close()
        assert decided is not None, worker.tail()
        assert decided["purchase_id"] == purchase_id
    finally:
        worker.stop()


def _base_env(settings: Settings) -> dict[str, str]:
    import os

    return {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix, "REDIS_URL": settings.redis.dsn,
            "POSTGRES_URL": settings.postgres.dsn, "SENTINEL_APP_ID": settings.stream.app_id}
