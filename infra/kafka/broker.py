"""Apache Kafka in KRaft mode, one node (broker and controller in one JVM), on 127.0.0.1.

Jars come from Maven Central through ``pom.xml``; storage is formatted once (``meta.properties``
marks it), so topics and committed offsets survive a restart.

Open files: the broker holds a few descriptors per partition (its log segment and indexes),
so many topics exhaust the usual 1 024 or 20 000 (a shared development broker died with
"Too many open files" at ~19 900 partitions). ``raise_open_files`` runs in the child before
the JVM starts and raises its soft ``RLIMIT_NOFILE`` to the hard limit (at most
``OPEN_FILES``); raising the hard limit itself needs privileges we do not ask for, so where
soft and hard are equal nothing changes and ``ulimit -Hn`` is the ceiling. Tests and
benchmarks delete their topics (``infra/scratch.py``) so the count stays small anyway.
"""

from __future__ import annotations

import base64
import resource
import shutil
import subprocess
import uuid
from collections.abc import Sequence
from pathlib import Path

POM = Path(__file__).resolve().parent / "pom.xml"
# 512 MB ran out of heap here with ~16 000 partitions (parallel test runs leave many topics).
JAVA_HEAP = "-Xmx1536m"
# The JVM's default collector (G1, pause goal 200 ms) stopped the broker 17-27 ms for each
# young collection, every 4-10 s under the pipeline bench: every record in flight waited, on
# both hops of a purchase (in, and its decision out). ZGC collects concurrently (pauses under
# a millisecond). ``sentinel bench pipeline --purchases 10000 --rates 500 1000 --seconds 5``,
# a restarted broker each, at 1 000/s: p50 11.5/13.1/10.3/9.5 ms, p99 29.9/77.6/36.5/27.2
# with ZGC; 34.1/15.8/11.3/18.6, p99 256.6/44.5/33.1/62.5 with G1 (its first run, a broker
# just started, the slowest of all).
JAVA_GC = "-XX:+UseZGC"
OPEN_FILES = 1_048_576  # the kernel's default nr_open: no use asking for more


class KafkaSetupError(RuntimeError):
    """Resolving the jars or formatting the storage failed; the message carries the output."""


def properties(port: int, kafka_dir: Path) -> str:
    """``server.properties`` for a single KRaft node; the controller listens on ``port + 1``."""
    controller = port + 1
    lines = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(kafka_dir / "data"),
        "num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # Unknown topics fail loudly; Faust creates its own topics through the admin API.
        "auto.create.topics.enable": "false",
        "controlled.shutdown.enable": "true",
    }
    return "".join(f"{key}={value}\n" for key, value in lines.items())


def log4j_properties(log_file: Path) -> str:
    """A reload4j config that writes the broker's log to ``log_file`` (rolled at 10 MB)."""
    return (
        "log4j.rootLogger=INFO, file\n"
        "log4j.appender.file=org.apache.log4j.RollingFileAppender\n"
        f"log4j.appender.file.File={log_file}\n"
        "log4j.appender.file.MaxFileSize=10MB\n"
        "log4j.appender.file.MaxBackupIndex=2\n"
        "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
        "log4j.logger.kafka.request.logger=WARN\n"
        "log4j.logger.state.change.logger=WARN\n"
    )


def cluster_id() -> str:
    """A random cluster id in Kafka's own format (url-safe base64 of 16 bytes, no padding)."""
    while True:
        value = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not value.startswith("-"):  # Kafka rejects ids that look like a CLI flag
            return value


def raise_open_files(wanted: int = OPEN_FILES) -> int:
    """Raise this process's soft open-files limit as far as the hard limit allows (a
    ``preexec_fn``: the broker inherits it); return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def command(kafka_dir: Path) -> list[str]:
    """The broker's command line; run it with ``cwd=kafka_dir``."""
    return [
        _tool("java"),
        JAVA_HEAP,
        JAVA_GC,
        "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{kafka_dir / 'log4j.properties'}",
        f"-Dkafka.logs.dir={kafka_dir}",
        "-cp",
        f"{kafka_dir / 'libs'}/*",
        "kafka.Kafka",
        str(kafka_dir / "server.properties"),
    ]


def prepare(
    port: int, kafka_dir: Path, scram: Sequence[str] = (), server_properties: str | None = None
) -> None:
    """Write the configs, resolve the jars once and format the storage once (``scram``:
    ``--add-scram`` credentials for a secured node, ``infra/kafka/secure.py``)."""
    (kafka_dir / "data").mkdir(parents=True, exist_ok=True)
    (kafka_dir / "server.properties").write_text(server_properties or properties(port, kafka_dir))
    (kafka_dir / "log4j.properties").write_text(log4j_properties(kafka_dir / "server.log"))
    libs = kafka_dir / "libs"
    if not any(libs.glob("kafka_2.13-*.jar")):
        _run([_tool("mvn"), "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
              f"-DoutputDirectory={libs}", "-DincludeScope=runtime"], timeout=600)
    if not (kafka_dir / "data" / "meta.properties").exists():
        _run([_tool("java"), "-cp", f"{libs}/*", f"-Dlog4j.configuration=file:{kafka_dir / 'log4j.properties'}",
              "kafka.tools.StorageTool", "format", "-t", cluster_id(),
              "-c", str(kafka_dir / "server.properties"),
              *(arg for cred in scram for arg in ("--add-scram", cred))], timeout=120)


def available() -> bool:
    """True when Java and Maven are on the PATH (else the Tansu fallback may stand in)."""
    return bool(shutil.which("java") and shutil.which("mvn"))


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise KafkaSetupError(f"{name} not found on PATH: Apache Kafka needs Java 17 and Maven")
    return path


def _run(argv: list[str], timeout: float) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise KafkaSetupError(f"{argv[0]} timed out after {timeout:.0f} s: {' '.join(argv)}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        raise KafkaSetupError(f"failed ({done.returncode}): {' '.join(argv)}\n{tail}")
