"""Pure parts of the embedded stack: rendered configs, command lines, server selection."""

from __future__ import annotations

import resource
import signal
import subprocess
from pathlib import Path

import pytest

from infra.kafka import broker, tansu
from infra.local import SERVERS, InfraError, needs_embedded, server_spec
from infra.settings import KafkaSettings, PostgresSettings, RedisSettings, Settings, StreamSettings

pytestmark = pytest.mark.unit


def make_settings(tmp_path: Path, kafka: str = "127.0.0.1:29092") -> Settings:
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=kafka),
        postgres=PostgresSettings(url="postgresql://alice@127.0.0.1:25432/shop"),
        redis=RedisSettings(url="redis://127.0.0.1:26379/0"),
        stream=StreamSettings(data_dir=tmp_path),
    )


def parse(properties: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in properties.splitlines())


def test_kafka_properties_single_kraft_node_on_loopback() -> None:
    props = parse(broker.properties(29092, Path("/d/kafka")))
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:29093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:29092"
    assert props["log.dirs"] == "/d/kafka/data"
    assert props["auto.create.topics.enable"] == "false"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"


def test_kafka_log4j_writes_to_the_given_file() -> None:
    conf = parse(broker.log4j_properties(Path("/d/kafka/server.log")))
    assert conf["log4j.appender.file.File"] == "/d/kafka/server.log"
    assert conf["log4j.rootLogger"] == "INFO, file"


def test_cluster_id_has_kafkas_format() -> None:
    ids = {broker.cluster_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 22 and not i.startswith("-") and "=" not in i for i in ids)


def test_kafka_command_runs_the_broker_with_our_configs() -> None:
    argv = broker.command(Path("/d/kafka"))
    assert argv[-2:] == ["kafka.Kafka", "/d/kafka/server.properties"]
    assert "-Dlog4j.configuration=file:/d/kafka/log4j.properties" in argv
    assert "/d/kafka/libs/*" in argv
    assert "-XX:+UseZGC" in argv  # no stop-the-world young collections (broker.JAVA_GC)


def test_the_broker_starts_with_the_soft_open_files_limit_raised_to_the_hard_one() -> None:
    def low_then_raised() -> None:  # as if started from a shell with a low soft limit
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        broker.raise_open_files()

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    child = subprocess.run(["sh", "-c", "ulimit -Sn"], capture_output=True, text=True, check=True,
                           preexec_fn=low_then_raised)
    expected = broker.OPEN_FILES if hard == resource.RLIM_INFINITY else min(broker.OPEN_FILES, hard)
    assert int(child.stdout) == expected


def test_only_the_kafka_server_raises_its_open_files_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(broker, "available", lambda: True)
    kafka, postgres, redis = (server_spec(make_settings(tmp_path), n) for n in SERVERS)
    assert kafka.preexec is broker.raise_open_files
    assert postgres.preexec is None and redis.preexec is None


def test_specs_take_ports_and_dirs_from_settings(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    kafka, postgres, redis = (server_spec(settings, n) for n in SERVERS)
    assert (kafka.ports, kafka.endpoint, kafka.home) == ((29092, 29093), "127.0.0.1:29092", tmp_path / "kafka")
    assert postgres.endpoint == "postgresql://alice@127.0.0.1:25432/shop"
    assert postgres.stop_signal == signal.SIGINT
    # pytest's tmp_path is private to root: as root, the cluster lives where postgres can go.
    assert postgres.home.name == "postgres"
    assert postgres.home.parent in (tmp_path, Path("/var/lib/sentinel") / postgres.home.parent.name)
    assert redis.endpoint == "redis://127.0.0.1:26379/0"


def test_redis_command_is_durable_and_loopback_only(tmp_path: Path) -> None:
    argv = server_spec(make_settings(tmp_path), "redis").argv()
    pairs = dict(zip(argv[1::2], argv[2::2], strict=True))
    assert pairs == {
        "--port": "26379", "--bind": "127.0.0.1", "--dir": str(tmp_path / "redis"),
        "--appendonly": "yes", "--daemonize": "no", "--protected-mode": "yes",
    }


def test_env_endpoints_win(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert needs_embedded(settings, {}) == set(SERVERS)
    assert needs_embedded(settings, {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092"}) == {"postgres", "redis"}
    assert needs_embedded(settings, {"POSTGRES_URL": "x", "REDIS_URL": "y"}) == {"kafka"}


def test_remote_endpoints_are_never_started(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, kafka="kafka.internal:9092")
    assert needs_embedded(settings, {}) == {"postgres", "redis"}


def test_tansu_stands_in_only_without_java_or_maven(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path)
    monkeypatch.setattr(tansu, "binary", lambda: "/opt/tansu")
    monkeypatch.setattr(broker, "available", lambda: True)
    assert server_spec(settings, "kafka").engine == "apache-kafka"
    monkeypatch.setattr(broker, "available", lambda: False)
    spec = server_spec(settings, "kafka")
    assert spec.engine == "tansu"
    assert spec.argv() == tansu.command("/opt/tansu", 29092)
    assert "tcp://127.0.0.1:29092" in spec.argv()


def test_unknown_server_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InfraError, match="unknown server"):
        server_spec(make_settings(tmp_path), "mysql")


def test_postgres_data_moves_where_the_postgres_user_can_reach_it(tmp_path):
    """A checkout the ``postgres`` user cannot enter (e.g. under /root) gets its cluster under
    /var/lib/sentinel, the same folder every time for the same data dir."""
    from infra.local import _pg_home

    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    data_dir = private / ".data"
    assert _pg_home(tmp_path / "open", None) == tmp_path / "open" / "postgres"
    home = _pg_home(data_dir, "postgres")
    assert home.parent.parent == Path("/var/lib/sentinel") and home.name == "postgres"
    assert home == _pg_home(data_dir, "postgres")
    assert home != _pg_home(private / "other" / ".data", "postgres")


def test_services_on_an_embedded_tansu_fetch_with_its_short_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from infra import services, stack
    from infra.settings import KafkaSettings as Kafka

    settings = make_settings(tmp_path)
    chosen = [s for s in services.SERVICES if s.name in ("worker", "sink-postgres")]
    assert len(chosen) == 2
    monkeypatch.delenv("KAFKA_FETCH_WAIT_MAX_MS", raising=False)
    monkeypatch.setattr(tansu, "binary", lambda: "/opt/tansu")
    monkeypatch.setattr(broker, "available", lambda: True)
    assert stack.service_env(settings, chosen, {"kafka"}) == {}  # Apache Kafka: the default
    assert Kafka().fetch_wait_max_ms == 100
    monkeypatch.setattr(broker, "available", lambda: False)
    wait = str(stack.TANSU_FETCH_WAIT_MAX_MS)
    assert stack.service_env(settings, chosen, {"kafka"}) == {
        "worker": {"KAFKA_FETCH_WAIT_MAX_MS": wait},
        "sink-postgres": {"KAFKA_FETCH_WAIT_MAX_MS": wait}}
    assert stack.service_env(settings, chosen, set()) == {}  # a broker we did not start
    monkeypatch.setenv("KAFKA_FETCH_WAIT_MAX_MS", "25")  # what the user set wins
    assert stack.service_env(settings, chosen, {"kafka"}) == {}
