"""Topic administration: create every registered topic idempotently with the admin API."""

from __future__ import annotations

import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from infra import topics
from infra.settings import Settings


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient(settings.kafka.as_confluent())


def stable_members(client: AdminClient, group: str) -> int:
    """How many members ``group`` has once it is stable (each owns its partitions); 0 while it
    rebalances or is empty."""
    described = client.describe_consumer_groups([group])[group].result(timeout=10)
    return len(described.members) if described.state.name == "STABLE" else 0


def create_topics(settings: Settings, specs=topics.ALL, timeout: float = 30.0) -> dict[str, str]:
    """Create what is missing; return {topic: "created" | "exists"} once the broker's metadata
    lists them all (it lags the controller's answer: a busy broker listed a test's new topics
    only after its teardown had looked for them, and they were left). Safe to run twice."""
    admin = admin_client(settings)
    prefix = settings.kafka.topic_prefix
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = {topics.full_name(s, prefix): s for s in specs}
    missing = [
        NewTopic(name, num_partitions=spec.partitions, replication_factor=1, config=spec.config())
        for name, spec in wanted.items()
        if name not in existing
    ]
    result = {name: "exists" for name in wanted if name in existing}
    if missing:
        for name, future in admin.create_topics(missing, operation_timeout=timeout).items():
            try:
                future.result()
                result[name] = "created"
            except KafkaException as exc:
                if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                    raise
                result[name] = "exists"
    until_listed(admin, set(wanted), True, timeout)
    return dict(sorted(result.items()))


def describe_topics(settings: Settings, timeout: float = 10.0) -> dict[str, int]:
    """Every Sentinel topic on the broker with its partition count."""
    meta = admin_client(settings).list_topics(timeout=timeout)
    prefix = settings.kafka.topic_prefix
    names = {topics.full_name(s, prefix) for s in topics.ALL}
    return {n: len(t.partitions) for n, t in sorted(meta.topics.items()) if n in names}


def delete_prefixed(settings: Settings, prefix: str, timeout: float = 30.0) -> list[str]:
    """Delete every topic whose name starts with ``prefix`` (a test's topics and the Faust
    changelogs of an app id under that prefix). Refuses an empty prefix."""
    if not prefix:
        raise ValueError("refusing to delete topics without a prefix")
    names = [n for n in admin_client(settings).list_topics(timeout=timeout).topics
             if n.startswith(prefix)]
    return delete_topics(settings, names, timeout)


def delete_topics(settings: Settings, names: list[str], timeout: float = 30.0) -> list[str]:
    """Delete ``names`` (one already gone is fine) and wait until the broker's metadata no
    longer lists them (it lags the controller's answer); raise if the broker refused one."""
    if not names:
        return names
    client = admin_client(settings)  # held until the futures are done: its end fails them
    for future in client.delete_topics(names, operation_timeout=timeout).values():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].name() != "UNKNOWN_TOPIC_OR_PART":
                raise
    until_listed(client, set(names), False, timeout)
    return names


def until_listed(client: AdminClient, names: set[str], listed: bool, timeout: float) -> None:
    """Until the broker's metadata lists all ``names`` (or, ``listed`` False, none of them)."""
    deadline = time.monotonic() + timeout
    while True:
        shown = names & set(client.list_topics(timeout=timeout).topics)
        if shown == (names if listed else set()):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"after {timeout:.0f} s the broker lists {sorted(shown)} "
                               f"of {sorted(names)}; expected {'all' if listed else 'none'}")
        time.sleep(0.05)
