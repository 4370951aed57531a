"""The gateway under benchmark: a uvicorn subprocess on 127.0.0.1, and a topic count."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from infra.process import cpu_seconds, proc_stat, stop_group
from infra.secrets import webhook_secrets
from infra.settings import Settings
from infra.topics import TopicSpec, full_name

NO_LEADER_YET = {
    KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._TIMED_OUT, KafkaError._TRANSPORT,
}  # fmt: skip


class GatewayProcess:
    """``uvicorn connectors.webhook:app_from_env`` with ``settings`` passed as environment."""

    def __init__(self, settings: Settings, port: int, workers: int = 1):
        hook = settings.webhook
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix,
            "REDIS_URL": settings.redis.dsn,
            "WEBHOOK_SECRETS": ",".join(s.decode() for s in webhook_secrets(settings)),
            "WEBHOOK_RATE_PER_IP_PER_MIN": str(hook.rate_per_ip_per_min),
            "WEBHOOK_RATE_PER_WALLET_PER_MIN": str(hook.rate_per_wallet_per_min),
            "WEBHOOK_RATE_GLOBAL_PER_MIN": str(hook.rate_global_per_min),
        }
        argv = [sys.executable, "-m", "uvicorn", "connectors.webhook:app_from_env", "--factory",
                "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
                "--no-access-log", "--log-level", "warning",
                "--limit-concurrency", str(hook.limit_concurrency)]  # fmt: skip
        self.proc = subprocess.Popen(argv, env=env, start_new_session=True)

    def assert_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"gateway exited with {self.proc.returncode}")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the gateway and its workers (its process group)."""
        group = [pid.name for pid in Path("/proc").glob("[0-9]*")
                 if proc_stat(pid.name)[2:3] == [str(self.proc.pid)]]  # field 5: process group
        return sum(cpu_seconds(pid) for pid in group)

    @staticmethod
    def http_impl() -> str:
        fast = [m for m in ("uvloop", "httptools") if importlib.util.find_spec(m)]
        return "+".join(fast) if fast else "asyncio+h11"

    def stop(self, grace_s: float = 15.0) -> None:
        stop_group(self.proc, grace_s, kill_wait_s=5)


def topic_records(settings: Settings, spec: TopicSpec, timeout_s: float = 30.0) -> int:
    """Records on a topic (sum of high minus low watermarks over its partitions).

    Retries while a new topic's partitions have no leader yet.
    """
    name = full_name(spec, settings.kafka.topic_prefix)
    consumer = Consumer(settings.kafka.consumer_conf(f"bench-count-{os.getpid()}"))
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                return _watermark_total(consumer, name)
            except KafkaException as exc:
                err = exc.args[0]
                retry = err.retriable() or err.code() in NO_LEADER_YET
                if not retry or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        consumer.close()


def _watermark_total(consumer: Consumer, name: str) -> int:
    partitions = consumer.list_topics(name, timeout=10).topics[name].partitions
    total = 0
    for p in partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)
        total += high - low
    return total
