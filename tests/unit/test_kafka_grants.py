"""The Kafka grants of a SASL deployment (infra/kafka/acls.py) as the issue states them, and
the generated secrets of `sentinel secrets`."""

from __future__ import annotations

import stat

import pytest

from infra import topics
from infra.kafka.acls import ALL, WRITE, bindings, grants, passwords
from infra.security_cli import generated_env
from infra.settings import KafkaPasswordSettings

pytestmark = pytest.mark.unit


def writers(name: str) -> set[str]:
    return {g.principal for g in grants() if g.resource == "topic" and g.name == name
            and g.operation in (WRITE, ALL)}  # fmt: skip


def test_only_the_gateway_and_the_chain_listener_write_source_topics() -> None:
    for spec in (topics.PURCHASES, topics.AUTH_EVENTS, topics.LABELS):
        assert writers(spec.name) == {"gateway"}, spec.name
    assert writers(topics.CHAIN_TRANSFERS.name) == {"chain"}


def test_only_the_worker_writes_decisions_and_security_events_come_from_known_writers() -> None:
    assert writers(topics.DECISIONS.name) == {"worker"}
    assert writers(topics.SECURITY_EVENTS.name) == {"gateway", "worker", "chain"}
    assert writers(topics.ALERTS.name) == {"sink"}


def test_grants_follow_the_topic_prefix_and_have_no_duplicate_bindings() -> None:
    prefixed = grants("t1.")
    assert all(g.name.startswith(("t1.", "sentinel-", "replica-", "follower-", "chain-",
                                  "_schemas", "schema-registry", "sentinel")) for g in prefixed)
    acl = bindings(prefixed)
    assert len(acl) == len({(b.name, b.principal, b.operation, b.resource_pattern_type)
                            for b in acl})  # fmt: skip


def test_missing_passwords_are_named() -> None:
    with pytest.raises(ValueError, match="KAFKA_PASSWORD_WORKER"):
        passwords(KafkaPasswordSettings(gateway="g", chain="c", sink="s", registry="r"))


def test_sentinel_secrets_generates_every_password_and_never_overwrites(tmp_path) -> None:
    from infra import cli

    env = generated_env()
    assert {"WEBHOOK_SECRETS", "POSTGRES_PASSWORD", "KAFKA_ADMIN_PASSWORD",
            "KAFKA_PASSWORD_WORKER"} <= set(env)  # fmt: skip
    assert len(set(env.values())) == len(env) and all(len(v) == 64 for v in env.values())
    out = tmp_path / ".env"
    assert cli.main(["secrets", "--out", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    written = out.read_text()
    assert cli.main(["secrets", "--out", str(out)]) == 2 and out.read_text() == written
