"""Who may do what on Kafka: one SCRAM principal per Sentinel component and its ACLs, derived
from the topic registry (``infra/topics.py``), applied with the admin API.

Used where Kafka authenticates clients (``docker-compose.yml``: SASL/SCRAM and the
StandardAuthorizer, nothing allowed without an ACL); the embedded stack stays PLAINTEXT on the
loopback. ``sentinel kafka setup`` (as the super user ``admin``) upserts each principal's SCRAM
credential from ``KAFKA_PASSWORD_<PRINCIPAL>`` and creates the ACLs; it is idempotent.

- ``gateway`` writes the webhook topics (purchases, auth events, labels) and its security
  events; it reads nothing.
- ``chain`` writes chain transfers, its checkpoints and security events, transactionally.
- ``worker`` reads the sources, writes decisions, security events, the internal repartition
  topic and dead letters, owns the Faust app's topics and groups (prefix ``<app id>-``).
- ``sink`` reads what the sinks store, writes alerts, fraud marks and dead letters.
- ``registry``: the Schema Registry's ``_schemas`` topic and group.

Only the gateway and the chain listener write source topics; only the worker writes decisions.
Security events are written by the gateway (auth failures, rate limits), the worker (fraud
detections) and the chain listener (reorgs).
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)

from infra import topics
from infra.settings import KafkaPasswordSettings, Settings

MECHANISM = "SCRAM-SHA-512"
PRINCIPALS = ("gateway", "chain", "worker", "sink", "registry")
SCRAM_ITERATIONS = 8192
READ, WRITE, ALL = "READ", "WRITE", "ALL"


@dataclass(frozen=True)
class Grant:
    principal: str
    operation: str  # READ, WRITE, ALL, DESCRIBE, CREATE
    resource: str  # topic, group, transactional_id
    name: str
    prefixed: bool = False


def _topics(principal: str, operation: str, specs, prefix: str) -> list[Grant]:
    return [Grant(principal, operation, "topic", topics.full_name(s, prefix)) for s in specs]


def grants(prefix: str = "", app_id: str = "sentinel") -> list[Grant]:
    """Every ACL of every principal (``prefix``: the topic prefix of a tenant or a test)."""
    dlqs = [topics.dlq(s) for s in topics.SOURCES]
    webhook = (topics.PURCHASES, topics.AUTH_EVENTS, topics.LABELS, topics.SECURITY_EVENTS)
    chain_out = (topics.CHAIN_TRANSFERS, topics.CHAIN_CHECKPOINTS, topics.SECURITY_EVENTS)
    # The worker reads back its own decisions at an assignment (streams/redelivery.py).
    worker_in = (topics.PURCHASES, topics.AUTH_EVENTS, topics.CHAIN_TRANSFERS,
                 topics.TRANSFERS_BY_SENDER, topics.RULES, topics.FRAUD_MARKS,
                 topics.DECISIONS)  # fmt: skip
    worker_out = (topics.DECISIONS, topics.SECURITY_EVENTS, topics.TRANSFERS_BY_SENDER,
                  topics.RULES, *dlqs)  # fmt: skip
    sink_in = (*topics.SOURCES, topics.FRAUD_MARKS)
    sink_out = (topics.ALERTS, topics.FRAUD_MARKS, *dlqs)
    return [
        *_topics("gateway", WRITE, webhook, prefix),
        *_topics("chain", WRITE, chain_out, prefix),
        *_topics("chain", READ, (topics.CHAIN_CHECKPOINTS,), prefix),
        Grant("chain", WRITE, "transactional_id", f"sentinel-chain-{prefix}", prefixed=True),
        Grant("chain", READ, "group", "chain-checkpoint-reader-", prefixed=True),
        *_topics("worker", READ, worker_in, prefix),
        *_topics("worker", WRITE, worker_out, prefix),
        Grant("worker", ALL, "topic", f"{app_id}-", prefixed=True),  # Faust changelogs
        Grant("worker", ALL, "group", app_id, prefixed=True),
        *(Grant("worker", READ, "group", g, prefixed=True) for g in ("replica-", "follower-")),
        *_topics("sink", READ, sink_in, prefix),
        *_topics("sink", WRITE, sink_out, prefix),
        Grant("sink", READ, "group", f"{prefix}sentinel-sink-", prefixed=True),
        Grant("sink", READ, "group", "follower-", prefixed=True),
        Grant("registry", ALL, "topic", "_schemas"),
        Grant("registry", ALL, "group", "schema-registry"),
    ]


_RESOURCES = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP,
              "transactional_id": ResourceType.TRANSACTIONAL_ID}  # fmt: skip


def bindings(wanted: list[Grant]) -> list[AclBinding]:
    """The grants as ACL bindings (``User:<principal>``, any host, ALLOW); WRITE implies
    DESCRIBE, READ on a topic implies DESCRIBE."""
    keys = dict.fromkeys(
        (g.resource, g.name, g.prefixed, g.principal, op)
        for g in wanted
        for op in [g.operation] + (["DESCRIBE"] if g.operation in (READ, WRITE) else [])
    )
    return [
        AclBinding(_RESOURCES[resource], name,
                   ResourcePatternType.PREFIXED if prefixed else ResourcePatternType.LITERAL,
                   f"User:{principal}", "*", AclOperation[op], AclPermissionType.ALLOW)
        for resource, name, prefixed, principal, op in keys
    ]  # fmt: skip


def passwords(configured: KafkaPasswordSettings | None = None) -> dict[str, str]:
    """Each principal's password (``KAFKA_PASSWORD_<PRINCIPAL>``); missing ones are named."""
    conf = configured or KafkaPasswordSettings()
    found = {p: getattr(conf, p) for p in PRINCIPALS}
    missing = [f"KAFKA_PASSWORD_{p.upper()}" for p, value in found.items() if value is None]
    if missing:
        raise ValueError(f"set {', '.join(missing)} (`sentinel secrets` generates them all)")
    return {p: value.get_secret_value() for p, value in found.items() if value is not None}


def setup(settings: Settings, secrets: dict[str, str], timeout: float = 30.0) -> dict[str, int]:
    """As a super user: upsert every principal's SCRAM credential and create every ACL."""
    admin = AdminClient(settings.kafka.as_confluent())
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    upserts: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(user, info, password.encode())
        for user, password in secrets.items()
    ]
    for future in admin.alter_user_scram_credentials(upserts, request_timeout=timeout).values():
        future.result()
    acls = bindings(grants(settings.kafka.topic_prefix, settings.stream.app_id))
    for future in admin.create_acls(acls, request_timeout=timeout).values():
        future.result()
    return {"users": len(upserts), "acls": len(acls)}
