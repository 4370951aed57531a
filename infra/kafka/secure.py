"""A KRaft node that authenticates clients (SASL/SCRAM) and authorises them (ACLs): the
listener lines of ``broker.properties`` with the security of ``sasl.properties`` (the file
docker-compose.yml mounts too), its storage formatted with the ``admin`` SCRAM credential."""

from __future__ import annotations

from pathlib import Path

from infra.kafka import broker
from infra.kafka.acls import MECHANISM
from infra.settings import KafkaSettings, Settings

SASL_PROPERTIES = Path(__file__).resolve().parent / "sasl.properties"
_OVERRIDDEN = ("listeners", "advertised.listeners", "listener.security.protocol.map",
               "inter.broker.listener.name")  # fmt: skip


def properties(port: int, kafka_dir: Path) -> str:
    """``server.properties`` of a secured single node on 127.0.0.1 (controller: ``port + 1``)."""
    kept = [line for line in broker.properties(port, kafka_dir).splitlines()
            if line.split("=", 1)[0] not in _OVERRIDDEN]  # fmt: skip
    listeners = [
        f"listeners=SASL_PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{port + 1}",
        f"advertised.listeners=SASL_PLAINTEXT://127.0.0.1:{port}",
    ]
    return "\n".join([*kept, *listeners, SASL_PROPERTIES.read_text()])


def prepare(port: int, kafka_dir: Path, admin_password: str) -> None:
    """Write the configs and format the storage with the ``admin`` SCRAM credential."""
    broker.prepare(port, kafka_dir, scram=[f"{MECHANISM}=[name=admin,password={admin_password}]"],
                   server_properties=properties(port, kafka_dir))  # fmt: skip


def as_principal(settings: Settings, user: str, password: str) -> Settings:
    """``settings`` whose Kafka clients authenticate as ``user``."""
    kafka = KafkaSettings(**{**settings.kafka.model_dump(), "security_protocol": "SASL_PLAINTEXT",
                             "sasl_mechanism": MECHANISM, "sasl_username": user,
                             "sasl_password": password})  # fmt: skip
    return settings.model_copy(update={"kafka": kafka})
