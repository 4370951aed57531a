"""An Apache Kafka broker of a test's own (free ports, a temporary data dir), for faults that
must not touch the session's shared broker: a broker restart. Started and stopped with
``infra.local`` as the embedded stack is; the jars are linked from the usual data dir."""

from __future__ import annotations

import random
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from infra import local
from infra.chaos import port_free
from infra.settings import KafkaSettings, Settings, StreamSettings, get_settings


@dataclass
class PrivateKafka:
    bootstrap: str
    server: local.Server

    def stop(self) -> None:
        """A clean shutdown, as ``sentinel infra down`` does it."""
        local.stop_servers([self.server])

    def start(self) -> None:
        """Returns once the broker answers metadata requests."""
        local.start_servers([self.server])

    def restart(self) -> None:
        self.stop()
        self.start()


@contextmanager
def private_kafka() -> Iterator[PrivateKafka]:
    home = Path(tempfile.mkdtemp(prefix="sentinel-kafka-"))
    libs = get_settings().stream.data_dir / "kafka" / "libs"
    if libs.is_dir():  # else Maven resolves the jars into this dir
        (home / "kafka").mkdir()
        (home / "kafka" / "libs").symlink_to(libs)
    port = _free_pair()
    settings = Settings(kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}"),
                        stream=StreamSettings(data_dir=home))
    server = local.server_spec(settings, "kafka")
    # Tansu (the stand-in without Java) keeps nothing across a restart
    assert server.engine == "apache-kafka", "a broker restart needs Apache Kafka (Java, Maven)"
    try:
        local.start_servers([server])
        yield PrivateKafka(f"127.0.0.1:{port}", server)
    finally:
        local.stop_servers([server])
        shutil.rmtree(home, ignore_errors=True)


def _free_pair() -> int:
    """A port whose successor (the controller's) is free too, both below the ephemeral range:
    a client retrying a stopped broker's ephemeral port can connect to itself and hold it."""
    rng = random.Random()
    for _ in range(100):
        port = rng.randrange(20000, 32000)
        if port_free(port) and port_free(port + 1):
            return port
    raise RuntimeError("no free pair of ports for a private Kafka broker")
