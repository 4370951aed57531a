"""Servers for the tests, chosen in this order for each of Kafka, PostgreSQL and Redis:

1. an endpoint given by the environment (KAFKA_BOOTSTRAP_SERVERS, POSTGRES_URL, REDIS_URL);
2. a testcontainers container when a Docker engine answers;
3. the embedded server (infra/local.py), started once per session.

Whatever the session started it stops at the end. Each test gets its own topic prefix (so its
own topics and consumer groups) and, when it asks, its own database.

Topics are scratch names of the session (``infra/scratch.py``): every prefix starts with the
session's token, each test deletes its topics, and the session ends with an error naming any
topic of its token still on the broker. It first sweeps what killed sessions and benchmarks
left behind, and SIGTERM interrupts it like Ctrl-C, so teardown runs when a run is stopped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from infra import admin, db, local, scratch
from infra.observe import ports_off
from infra.process import interrupt_on_term
from infra.settings import KafkaSettings, Settings, get_settings

ENV = local.ENDPOINT_ENV  # {"kafka": "KAFKA_BOOTSTRAP_SERVERS", ...}

# Processes serve metrics on fixed default ports; tests on a shared machine would collide, so
# every process a test starts has them off unless the test gives it a free port.
for _variable, _off in ports_off().items():
    os.environ.setdefault(_variable, _off)


def pytest_configure(config: pytest.Config) -> None:
    interrupt_on_term()


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=2)
    except Exception:
        return False
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


def _containers(names: set[str]) -> tuple[dict[str, str], list]:
    """Start testcontainers for ``names``; return their endpoints and the containers."""
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer
    from testcontainers.redis import RedisContainer

    endpoints, started = {}, []
    if "kafka" in names:
        kafka = KafkaContainer("confluentinc/cp-kafka:7.7.1").with_kraft().start()
        endpoints[ENV["kafka"]] = kafka.get_bootstrap_server()
        started.append(kafka)
    if "postgres" in names:
        pg = PostgresContainer("postgres:16", driver=None).start()
        endpoints[ENV["postgres"]] = pg.get_connection_url()
        started.append(pg)
    if "redis" in names:
        rd = RedisContainer("redis:7").start()
        host, port = rd.get_container_host_ip(), rd.get_exposed_port(6379)
        endpoints[ENV["redis"]] = f"redis://{host}:{port}/0"
        started.append(rd)
    return endpoints, started


@pytest.fixture(scope="session")
def stack() -> Iterator[Settings]:
    """Kafka, PostgreSQL and Redis endpoints for the whole session (see module doc)."""
    settings = get_settings()
    wanted = local.needs_embedded(settings)
    containers: list = []
    started_here: set[str] = set()
    if wanted and _docker_answers():
        endpoints, containers = _containers(wanted)
        os.environ.update(endpoints)
        get_settings.cache_clear()
        settings = get_settings()
    elif wanted:
        # Anything with a live pid was started before this session (perhaps busy, so not
        # answering a health check this instant): it is not ours to stop.
        already = {n for n, s in local.status(settings, wanted).items() if s.get("pid")}
        local.start_all(settings, wanted)
        started_here = wanted - already
    try:
        yield settings
    finally:
        for container in containers:
            container.stop()
        if started_here:
            local.stop_all(settings, started_here)


@pytest.fixture(scope="session")
def session_token(stack: Settings) -> Iterator[str]:
    """The session's scratch token; at the end, no topic of it may be left on the broker."""
    scratch.sweep(stack)
    run = scratch.claim(stack, "t")
    yield run.token
    left = scratch.leftovers(stack, run.token)
    scratch.delete_owned(stack, run.token)
    run.release()
    if left:
        pytest.fail(f"{len(left)} topics of this session were left on the broker (deleted "
                    f"now; a test or fixture does not delete what it creates): {left}")


@pytest.fixture
def topic_prefix(session_token: str) -> str:
    return f"{session_token}{uuid.uuid4().hex[:6]}."


@pytest.fixture
def settings(stack: Settings, topic_prefix: str) -> Iterator[Settings]:
    """The session's endpoints with this test's own topics (created, then deleted, with any
    Faust changelog topics of the test's app id) and consumer groups."""
    kafka = KafkaSettings(**{**stack.kafka.model_dump(), "topic_prefix": topic_prefix})
    test_settings = stack.model_copy(update={"kafka": kafka})
    try:
        admin.create_topics(test_settings)
        yield test_settings
    finally:
        try:
            admin.delete_prefixed(test_settings, topic_prefix)
        finally:
            admin.delete_prefixed(test_settings, app_id(test_settings))


def app_id(settings: Settings) -> str:
    """The Faust app id of a test's worker: its changelog topics start with it."""
    return f"sentinel-{settings.kafka.topic_prefix.strip('.')}"


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    """Environment for a subprocess (a worker) that must see this test's settings."""
    return {
        **os.environ,
        ENV["kafka"]: settings.kafka.bootstrap_servers,
        ENV["postgres"]: settings.postgres.dsn,
        ENV["redis"]: settings.redis.dsn,
        "KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix,
        "SENTINEL_APP_ID": app_id(settings),
    }


@pytest.fixture
def pg_dsn(stack: Settings) -> Iterator[str]:
    """A fresh, migrated database of its own, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    base = stack.postgres.dsn
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = base.rsplit("/", 1)[0] + f"/{name}"
    db.migrate(dsn)
    try:
        yield dsn
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_client(stack: Settings):
    import redis

    client = redis.Redis.from_url(stack.redis.dsn)
    yield client
    client.close()

