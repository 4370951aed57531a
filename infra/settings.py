"""One settings object, read from environment variables once at start-up.

Every concern has its own frozen pydantic-settings class with its own prefix. With nothing
set, every endpoint points at the embedded stack on 127.0.0.1 (``sentinel infra up``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


def _config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, frozen=True, extra="ignore")


class PortSettings(BaseSettings):
    """``SENTINEL_PORT_OFFSET`` moves every default loopback port (Kafka 19092, PostgreSQL
    15432, Redis 16379, EVM node 18545, gateway 8080, ...) by the same amount, so a second
    embedded stack (another checkout, a fresh-clone trial) runs beside the first. An endpoint
    set explicitly is used as given."""

    model_config = _config("SENTINEL_")

    port_offset: int = 0


def loopback_port(default: int) -> int:
    """``default`` moved by ``SENTINEL_PORT_OFFSET`` (read when a settings object is built)."""
    return default + PortSettings().port_offset


class KafkaSettings(BaseSettings):
    """Kafka client settings (``KAFKA_*``); ``as_confluent()`` gives librdkafka's keys."""

    model_config = _config("KAFKA_")

    bootstrap_servers: str = Field(default_factory=lambda: f"127.0.0.1:{loopback_port(19092)}")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    # Topic names are "<prefix><name>": lets tests and tenants share one cluster.
    topic_prefix: str = ""
    # How long the broker may hold a fetch that finds no record (Faust's aiokafka driver
    # hard-codes 1500 ms: streams/faust_compat.py sets this instead). Apache Kafka answers as
    # soon as a record is there, so this bounds only the round trips of an idle consumer: at
    # 10 ms an idle worker used 12 % of a core and the broker 11 %, at 100 ms 3 % and 4 %.
    # Tansu holds every fetch for the whole wait (DESIGN.md "Known facts"): on Tansu use 10,
    # as the embedded stack does for its services (``TANSU_FETCH_WAIT_MAX_MS``).
    fetch_wait_max_ms: int = 100
    session_timeout_ms: int = 6000

    def as_confluent(self) -> dict[str, str | int | float | bool]:
        conf: dict[str, str | int | float | bool] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            # TCP_NODELAY, as Kafka's Java clients and the broker set it: librdkafka leaves
            # Nagle on, which holds a small request back while an earlier one on the
            # connection is unanswered. Pipeline bench, four alternated pairs at 1 000 /s:
            # p99 28.4-70.5 ms against 38.2-154.8, p50 lower in three pairs of four.
            "socket.nagle.disable": True,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password:
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location:
            conf["ssl.ca.location"] = self.ssl_ca_location
        return conf

    def consumer_conf(self, group_id: str, **extra: str | int | bool) -> dict:
        return {
            **self.as_confluent(),
            "group.id": group_id,
            "fetch.wait.max.ms": self.fetch_wait_max_ms,
            "session.timeout.ms": self.session_timeout_ms,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **extra,
        }

    def producer_conf(self, **extra: str | int | bool) -> dict:
        return {
            **self.as_confluent(),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            # Java-compatible key hashing, as Faust/aiokafka and Kafka Streams use: a wallet
            # lands on the same partition whoever produced it (co-partitioned state).
            "partitioner": "murmur2_random",
            **extra,
        }

    @property
    def port(self) -> int:
        return _port(self.bootstrap_servers.split(",")[0], 19092)


class KafkaPasswordSettings(BaseSettings):
    """Each component's SCRAM password (``KAFKA_PASSWORD_<COMPONENT>``), read by
    ``sentinel kafka setup`` where Kafka authenticates clients (``infra/kafka/acls.py``)."""

    model_config = _config("KAFKA_PASSWORD_")

    gateway: SecretStr | None = None
    chain: SecretStr | None = None
    worker: SecretStr | None = None
    sink: SecretStr | None = None
    registry: SecretStr | None = None


class SchemaRegistrySettings(BaseSettings):
    """Schema ids: a real registry when ``SCHEMA_REGISTRY_URL`` is set, else a file registry."""

    model_config = _config("SCHEMA_REGISTRY_")

    url: str | None = None
    # File-backed registry: same ids in every process that shares this file.
    file: Path = REPO_ROOT / "schemas" / "registry.json"


class PostgresSettings(BaseSettings):
    model_config = _config("POSTGRES_")

    url: SecretStr = Field(default_factory=lambda: SecretStr(
        f"postgresql://sentinel@127.0.0.1:{loopback_port(15432)}/sentinel"))

    @property
    def dsn(self) -> str:
        return self.url.get_secret_value()

    @property
    def port(self) -> int:
        return urlsplit(self.dsn).port or 5432


class RedisSettings(BaseSettings):
    model_config = _config("REDIS_")

    url: SecretStr = Field(
        default_factory=lambda: SecretStr(f"redis://127.0.0.1:{loopback_port(16379)}/0"))

    @property
    def dsn(self) -> str:
        return self.url.get_secret_value()

    @property
    def port(self) -> int:
        return urlsplit(self.dsn).port or 6379


class EvmSettings(BaseSettings):
    model_config = _config("EVM_")

    rpc_url: str = Field(default_factory=lambda: f"http://127.0.0.1:{loopback_port(18545)}")
    chain_id: int = 31337
    confirmations: int = 3
    contracts: str = ""  # comma-separated ticket contract addresses to follow

    @property
    def port(self) -> int:
        return urlsplit(self.rpc_url).port or 8545


class StreamSettings(BaseSettings):
    """The Faust worker (``SENTINEL_*``)."""

    model_config = _config("SENTINEL_")

    app_id: str = "sentinel"
    data_dir: Path = REPO_ROOT / ".data"
    batch_size: int = 500
    batch_within_s: float = 0.01
    web_port: int = Field(default_factory=lambda: loopback_port(6066))
    # Event time: how late an event may be (behind its wallet's stream watermark) and still be
    # applied; later ones are dead-lettered with the reason. At most 1 h (the state's slack).
    allowed_lateness_ms: int = 5 * 60 * 1000
    chain_lateness_ms: int = 30 * 60 * 1000
    # Event time against ingest time: the edge refuses events more than this ahead of its
    # clock (422 naming the field) and scoring never lets one move a watermark further.
    max_future_skew_ms: int = 5 * 60 * 1000
    # The edge refuses events older than this; 0: the retention of the record's topic.
    max_event_age_ms: int = 0
    drift_check_s: float = 60.0  # how often the worker compares live features to training
    # How long a scoring batch waits for the worker's entity replica to cover its event time
    # before it is decided with the entity state it has (counted in a metric).
    entity_wait_s: float = 5.0
    # A purchase redelivered after a crash or a rebalance whose decision is already on the
    # decisions topic is not decided again (``streams/redelivery.py``): at an assignment the
    # decisions are read back from this long before the first redelivered purchase was
    # written (covers clock skew between its producer and the workers; more is only slower).
    redelivery_lookback_ms: int = 5 * 60 * 1000
    # Fault injection for tests: exit (os._exit, like a SIGKILL) right after this many
    # batches' decisions are acknowledged, before their wallet states are written. 0: never.
    fail_after_decided_batches: int = 0
    # Blocklists are read from a local snapshot refreshed from Redis this often; while Redis
    # is unreachable the last snapshot is used (metric sentinel_scoring_redis_fallback).
    blocklist_refresh_s: float = 1.0
    redis_timeout_s: float = 0.5
    log_level: str = "INFO"
    # Who fetches the worker's records under Faust: librdkafka (its own C threads;
    # ``streams/rd_fetch.py``, faust_compat override 14: at 1 000 purchases/s the p50 ~18 ->
    # ~11 ms, measured) or aiokafka (Faust's own driver, in Python on the agents' GIL).
    fetcher: Literal["librdkafka", "aiokafka"] = "librdkafka"
    # Debugging: answer memory breakdown requests into this file (``streams/memory_report``).
    memory_report: Path | None = None
    # Key of the pseudonyms logs use for user ids and group keys (infra.logsafe); unset: a
    # random key per process (pseudonyms then match within one process only).
    log_key: SecretStr | None = None

    def feature_knobs(self) -> dict[str, int]:
        """The ``processors.apply.FeatureConfig`` keyword arguments these settings fix."""
        return {
            "allowed_lateness_ms": self.allowed_lateness_ms,
            "chain_lateness_ms": self.chain_lateness_ms,
            "max_future_skew_ms": self.max_future_skew_ms,
        }


class MetricsSettings(BaseSettings):
    """Every process's Prometheus endpoint (``METRICS_*``): on by default, one port per kind of
    process so that all of them run side by side on one host; 0 turns one off. The gateway
    serves ``/metrics`` on its own HTTP port (``WEBHOOK_HOST``/``WEBHOOK_PORT``)."""

    model_config = _config("METRICS_")

    bind: str = "127.0.0.1"  # compose sets 0.0.0.0 so that Prometheus can scrape
    worker_port: int = Field(default_factory=lambda: loopback_port(9101))
    # sink_postgres_port also serves `sentinel sink all`
    sink_postgres_port: int = Field(default_factory=lambda: loopback_port(9102))
    sink_redis_port: int = Field(default_factory=lambda: loopback_port(9103))
    sink_siem_port: int = Field(default_factory=lambda: loopback_port(9104))
    chain_port: int = Field(default_factory=lambda: loopback_port(9105))
    maintenance_port: int = Field(default_factory=lambda: loopback_port(9106))
    # Consumer lag (records and seconds) is measured this often by each consuming process.
    lag_interval_s: float = 5.0
    # /readyz of a consumer answers 200 once its oldest unconsumed record is at most this old.
    ready_max_lag_s: float = 10.0

    def sink_port(self, sink: str) -> tuple[int, str]:
        """The port of ``sentinel sink <sink>`` (``all``: the PostgreSQL sink's) and its variable."""
        name = "postgres" if sink == "all" else sink
        field = f"sink_{name}_port"
        return getattr(self, field), f"METRICS_{field.upper()}"


MIN_SECRET_BYTES = 32


class WebhookSettings(BaseSettings):
    model_config = _config("WEBHOOK_")

    # Comma-separated: two secrets may be valid at once during rotation. Unset: a development
    # secret generated under the data dir, loopback only (``infra.secrets``).
    secrets: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = Field(default_factory=lambda: loopback_port(8080))
    tolerance_s: int = 300
    rate_per_ip_per_min: int = 100
    rate_per_wallet_per_min: int = 5
    rate_global_per_min: int = 10_000
    # Outages fail fast: Redis socket/connect timeout and the deadline of admission (503 +
    # Retry-After beyond it); requests in flight beyond max_in_flight are 503 at once;
    # uvicorn's own limit (connections + tasks) is the backstop.
    redis_timeout_s: float = 2.0
    # Unauthenticated traffic: a source (IPv4 address, IPv6 /64) with this many failed
    # authentications in a minute is refused (429) before its signature is checked (0: off);
    # its failures become one security event per source per window.
    preauth_failures_per_min: int = 20
    auth_failure_window_s: float = 60.0
    max_in_flight: int = 1000
    limit_concurrency: int = 4096

    @field_validator("secrets")
    @classmethod
    def _strong(cls, value: SecretStr | None) -> SecretStr | None:
        parts = [] if value is None else value.get_secret_value().split(",")
        if any(len(p.strip().encode()) < MIN_SECRET_BYTES for p in parts):
            raise ValueError(f"WEBHOOK_SECRETS: each secret needs at least {MIN_SECRET_BYTES}"
                             " bytes (e.g. `openssl rand -hex 32`)")  # fmt: skip
        return value

    def configured_secrets(self) -> list[bytes]:
        """The configured secrets (none: see ``infra.secrets.webhook_secrets``)."""
        raw = "" if self.secrets is None else self.secrets.get_secret_value()
        return [s.strip().encode() for s in raw.split(",") if s.strip()]


class ConsoleSettings(BaseSettings):
    """The operator console and its read API (``SENTINEL_CONSOLE_*``)."""

    model_config = _config("SENTINEL_CONSOLE_")

    host: str = "127.0.0.1"
    port: int = Field(default_factory=lambda: loopback_port(8090))
    session_ttl_s: int = 8 * 3600
    secure_cookies: bool = False  # set behind TLS: cookies then travel over HTTPS only
    # Long-poll waits (``wait_ms``): the longest one request may wait, and how many waits one
    # client (API key or session) may hold at once; more get 429.
    max_wait_ms: int = 10_000
    waits_per_client: int = 4
    login_failures_per_15min: int = 10  # per user name and per client IP
    rollup_refresh_s: float = 5.0  # how often the KPI and model-health rollups catch up
    review_sla_s: int = 4 * 3600  # a review case older than this is shown as late


class Settings(BaseSettings):
    """All concerns together. Build once with ``get_settings()``."""

    model_config = _config("SENTINEL_SETTINGS_")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    schema_registry: SchemaRegistrySettings = Field(default_factory=SchemaRegistrySettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    evm: EvmSettings = Field(default_factory=EvmSettings)
    stream: StreamSettings = Field(default_factory=StreamSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)


def _port(hostport: str, default: int) -> int:
    _, _, port = hostport.rpartition(":")
    return int(port) if port.isdigit() else default


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


# Every environment variable the settings read, for docker-compose checks and the README.
ENV_VARS: dict[str, type[BaseSettings]] = {
    f"{cls.model_config['env_prefix']}{name}".upper(): cls
    for cls in (
        PortSettings,
        KafkaSettings,
        KafkaPasswordSettings,
        SchemaRegistrySettings,
        PostgresSettings,
        RedisSettings,
        EvmSettings,
        StreamSettings,
        MetricsSettings,
        WebhookSettings,
        ConsoleSettings,
    )
    for name in cls.model_fields
}
