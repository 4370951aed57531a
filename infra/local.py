"""Embedded servers on 127.0.0.1: Apache Kafka (KRaft), PostgreSQL and Redis.

``start_all`` / ``stop_all`` / ``status`` start, health-check and stop real servers with all
their data under ``settings.stream.data_dir`` (one folder per server). Servers run detached,
in their own session, with a pid file and a log file each; ``stop_all`` stops only what a pid
file says we started. Functions return dicts and print nothing (the CLI prints).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import redis
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from psycopg import sql

from infra.kafka import broker, tansu
from infra.process import proc_stat
from infra.settings import Settings

SERVERS = ("kafka", "postgres", "redis")  # started by default (tests, `infra up`)
KNOWN = (*SERVERS, "evm")  # the local EVM node only on request (`sentinel up`)
# An endpoint set explicitly in the environment wins: that server is not started here.
ENDPOINT_ENV = {"kafka": "KAFKA_BOOTSTRAP_SERVERS", "postgres": "POSTGRES_URL",
                "redis": "REDIS_URL", "evm": "EVM_RPC_URL"}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}  # started by this process: reaped by poll()


class InfraError(RuntimeError):
    """A server could not be prepared, started or stopped; the message says why (log tail)."""


@dataclass(frozen=True)
class Server:
    """How to prepare, run, health-check and stop one embedded server."""

    name: str
    home: Path
    engine: str
    port: int
    endpoint: str
    argv: Callable[[], list[str]]
    healthy: Callable[[], bool]
    prepare: Callable[[], None] = lambda: None
    ready: Callable[[], None] = lambda: None  # once healthy, e.g. create the database
    ports: tuple[int, ...] = ()
    logs: tuple[Path, ...] = ()
    user: str | None = None
    stop_signal: int = signal.SIGTERM
    start_deadline_s: float = 30.0
    stop_grace_s: float = 30.0
    env: Mapping[str, str] = field(default_factory=dict)
    preexec: Callable[[], object] | None = None  # in the child before exec, e.g. rlimits

    @property
    def pid_file(self) -> Path:
        return self.home / f"{self.name}.pid"

    @property
    def out_file(self) -> Path:
        return self.home / f"{self.name}.out"


# ---------------------------------------------------------------- public API


def needs_embedded(settings: Settings, environ: Mapping[str, str] | None = None,
                   names: Iterable[str] = SERVERS) -> set[str]:
    """Servers to start here: endpoint not set in the environment and on the loopback."""
    env = os.environ if environ is None else environ
    hosts = {
        "kafka": settings.kafka.bootstrap_servers.split(",")[0].rpartition(":")[0],
        "postgres": urlsplit(settings.postgres.dsn).hostname or "",
        "redis": urlsplit(settings.redis.dsn).hostname or "",
        "evm": urlsplit(settings.evm.rpc_url).hostname or "",
    }
    return {name for name in names if not env.get(ENDPOINT_ENV[name]) and hosts[name] in LOOPBACK}


def start_all(settings: Settings, names: Iterable[str] | None = None) -> dict[str, dict]:
    """Start (or leave running) ``names``, default ``needs_embedded``; wait until all answer."""
    names = _ordered(names, needs_embedded(settings))
    return start_servers([server_spec(settings, n) for n in names])


def stop_all(settings: Settings, names: Iterable[str] | None = None) -> dict[str, dict]:
    """Stop the servers our pid files name (all, the EVM node too, by default), in reverse
    start order."""
    names = _ordered(names, set(KNOWN))
    return stop_servers([server_spec(settings, n) for n in reversed(names)])


def start_servers(servers: list[Server]) -> dict[str, dict]:
    """Spawn every server not already running, then wait for each to answer.

    One failure does not stop the others from starting; all failures are raised together.
    """
    errors: list[str] = []
    with _lock(servers):
        launched = []
        for server in servers:
            try:
                launched.append((server, *_launch(server)))
            except InfraError as exc:
                errors.append(str(exc))
        for server, pid, spawned in launched:
            try:
                _await_healthy(server, pid, spawned)
            except InfraError as exc:
                errors.append(str(exc))
        if errors:
            raise InfraError("\n\n".join(errors))
        return {s.name: _status(s) for s in servers}


def stop_servers(servers: list[Server]) -> dict[str, dict]:
    with _lock(servers):
        return {s.name: _stop(s) for s in servers}


def status(settings: Settings, names: Iterable[str] | None = None) -> dict[str, dict]:
    """Per server: state (running / unhealthy / stopped / external), pid, port, endpoint, log."""
    return {n: _status(server_spec(settings, n)) for n in _ordered(names, set(SERVERS))}


def start_server(settings: Settings, name: str) -> dict:
    return start_all(settings, [name])[name]


def stop_server(settings: Settings, name: str) -> dict:
    return stop_all(settings, [name])[name]


def server_spec(settings: Settings, name: str) -> Server:
    from infra import evm

    builders = {"kafka": _kafka, "postgres": _postgres, "redis": _redis, "evm": evm.server_spec}
    if name not in builders:
        raise InfraError(f"unknown server {name!r}; known: {', '.join(KNOWN)}")
    return builders[name](settings)


# ---------------------------------------------------------------- the three servers


def _kafka(settings: Settings) -> Server:
    """Apache Kafka when Java and Maven exist, else Tansu when its binary is found."""
    exe = None if broker.available() else tansu.binary()
    return tansu_spec(settings, exe) if exe else _apache_kafka(settings)


def _apache_kafka(settings: Settings) -> Server:
    home, port = settings.stream.data_dir / "kafka", settings.kafka.port
    return Server(
        name="kafka", engine="apache-kafka", home=home, port=port, endpoint=f"127.0.0.1:{port}",
        argv=lambda: broker.command(home), healthy=lambda: _kafka_healthy(port),
        prepare=lambda: broker.prepare(port, home), ports=(port, port + 1),
        logs=(home / "server.log",), start_deadline_s=120.0, stop_grace_s=60.0,
        preexec=broker.raise_open_files,
    )


def tansu_spec(settings: Settings, exe: str) -> Server:
    """Tansu as the "kafka" server (memory only): the fallback, or on request in tests."""
    home, port = settings.stream.data_dir / "kafka", settings.kafka.port
    return Server(
        name="kafka", engine="tansu", home=home, port=port, endpoint=f"127.0.0.1:{port}",
        argv=lambda: tansu.command(exe, port), healthy=lambda: _kafka_healthy(port),
        stop_grace_s=10.0,
    )


def _postgres(settings: Settings) -> Server:
    port = settings.postgres.port
    url = urlsplit(settings.postgres.dsn)
    user, db = url.username or "sentinel", url.path.lstrip("/") or "sentinel"
    run_as = "postgres" if os.geteuid() == 0 else None
    home = _pg_home(settings.stream.data_dir, run_as)
    argv = ["-D", str(home / "data"), "-p", str(port), "-k", str(home / "run"),
            "-c", "listen_addresses=127.0.0.1"]
    return Server(
        name="postgres", engine="postgresql", home=home, port=port, endpoint=f"postgresql://{user}@127.0.0.1:{port}/{db}",
        argv=lambda: [str(_pg_bindir() / "postgres"), *argv],
        healthy=lambda: _pg_healthy(port, user),
        prepare=lambda: _pg_init(_pg_bindir(), home, user, run_as),
        ready=lambda: _pg_create_db(port, user, db), user=run_as,
        stop_signal=signal.SIGINT,  # "fast" shutdown: SIGTERM would wait for every client
    )


def _redis(settings: Settings) -> Server:
    home, port = settings.stream.data_dir / "redis", settings.redis.port
    exe = shutil.which("redis-server") or "redis-server"
    argv = [exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(home),
            "--appendonly", "yes", "--daemonize", "no", "--protected-mode", "yes"]
    return Server(
        name="redis", engine="redis", home=home, port=port, endpoint=f"redis://127.0.0.1:{port}/0",
        argv=lambda: argv, healthy=lambda: _redis_healthy(port), start_deadline_s=15.0,
    )


def _kafka_healthy(port: int) -> bool:
    if not _port_open(port):
        return False
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}", "log_level": 0})
    try:
        return bool(admin.list_topics(timeout=2).brokers)
    except KafkaException:
        return False


def _pg_bindir() -> Path:
    """The newest Debian PostgreSQL, else ``pg_config --bindir``, else ``postgres`` on PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                   key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if found:
        return found[-1].parent
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        if (Path(out.stdout.strip()) / "postgres").exists():
            return Path(out.stdout.strip())
    exe = shutil.which("postgres")
    if exe is None:
        raise InfraError("PostgreSQL not found: apt-get install postgresql (or set POSTGRES_URL)")
    return Path(exe).parent


def _pg_init(bindir: Path, home: Path, user: str, run_as: str | None) -> None:
    """initdb once (as ``run_as`` when we are root: postgres refuses root), trust on loopback."""
    data, run = home / "data", home / "run"
    if (data / "PG_VERSION").exists():
        return
    if run_as:
        _ensure_user(run_as)
    for path, mode in ((data, 0o700), (run, 0o755)):
        path.mkdir(mode=mode, parents=True, exist_ok=True)
        if run_as:
            _check_reachable(path, run_as)
            shutil.chown(path, run_as, run_as)
    cmd = [str(bindir / "initdb"), "-D", str(data), "-U", user, "--auth=trust",
           "--encoding=UTF8", "--locale=C", "--no-instructions"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=home, check=False,
                          **_as_user(run_as))
    if done.returncode != 0:
        shutil.rmtree(data, ignore_errors=True)  # half an initdb would block the next try
        raise InfraError(f"initdb failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    hba = "local all all trust\nhost all all 127.0.0.1/32 trust\n"
    (data / "pg_hba.conf").write_text(hba)
    if run_as:
        shutil.chown(data / "pg_hba.conf", run_as, run_as)


def _ensure_user(user: str) -> None:
    """Create the unprivileged system user PostgreSQL runs as when we are root."""
    try:
        pwd.getpwnam(user)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", user], check=True, capture_output=True)


def _pg_home(data_dir: Path, run_as: str | None) -> Path:
    """``<data_dir>/postgres``; when root runs us from a folder the ``postgres`` user cannot
    enter (a checkout under /root), a folder of its own under /var/lib/sentinel named after
    the data dir, so that the same checkout always finds the same cluster."""
    home = data_dir / "postgres"
    if run_as is None or _can_enter(data_dir, run_as):
        return home
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
    return Path("/var/lib/sentinel") / digest / "postgres"


def _can_enter(path: Path, user: str) -> bool:
    """Whether ``user`` can traverse every existing folder on the way to ``path``."""
    try:
        _check_reachable(path / "x", user)
    except (InfraError, KeyError):
        return False
    return True


def _check_reachable(path: Path, user: str) -> None:
    """Fail clearly when ``user`` cannot traverse every parent of ``path``."""
    pw = pwd.getpwnam(user)
    for parent in path.parents:
        if not parent.exists():
            continue
        st = parent.stat()
        mask = 0o100 if st.st_uid == pw.pw_uid else 0o010 if st.st_gid == pw.pw_gid else 0o001
        if not st.st_mode & mask:
            raise InfraError(f"user {user!r} cannot enter {parent}: PostgreSQL runs as {user!r}; "
                             "use a data dir it can reach (e.g. chmod o+x the parents)")


def _pg_healthy(port: int, user: str) -> bool:
    try:
        with psycopg.connect(host="127.0.0.1", port=port, user=user, dbname="postgres",
                             connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def _pg_create_db(port: int, user: str, db: str) -> None:
    with psycopg.connect(host="127.0.0.1", port=port, user=user, dbname="postgres",
                         autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))


def _redis_healthy(port: int) -> bool:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


# ---------------------------------------------------------------- processes


def _launch(server: Server) -> tuple[int, bool]:
    """Spawn ``server`` unless our pid file names a live one; returns (pid, spawned)."""
    pid = _read_pid(server)
    if pid is not None:
        return pid, False
    server.pid_file.unlink(missing_ok=True)
    busy = [p for p in (server.ports or (server.port,)) if _port_open(p)]
    if busy:
        raise InfraError(f"{server.name}: port {busy[0]} is taken by a process we did not start; "
                         f"stop it or set {ENDPOINT_ENV.get(server.name, 'its endpoint')} to use it")
    server.home.mkdir(parents=True, exist_ok=True)
    try:
        server.prepare()
    except (broker.KafkaSetupError, OSError) as exc:
        raise InfraError(f"{server.name}: preparing failed: {exc}") from exc
    with server.out_file.open("ab") as out:
        proc = subprocess.Popen(server.argv(), cwd=server.home, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **server.env}, preexec_fn=server.preexec,
                                **_as_user(server.user))
    _CHILDREN[proc.pid] = proc
    server.pid_file.write_text(f"{proc.pid} {_start_time(proc.pid)}\n")
    return proc.pid, True


def _await_healthy(server: Server, pid: int, spawned: bool) -> None:
    """Wait until ``server`` answers; on exit or deadline raise with its log tail."""
    deadline = time.monotonic() + server.start_deadline_s
    while not server.healthy():
        if not _alive(pid):
            server.pid_file.unlink(missing_ok=True)
            raise InfraError(f"{server.name} exited during start-up.\n{_tail(server)}")
        if time.monotonic() > deadline:
            if spawned:
                _stop(server)
            raise InfraError(f"{server.name} did not answer on port {server.port} within "
                             f"{server.start_deadline_s:.0f} s.\n{_tail(server)}")
        time.sleep(0.2)
    server.ready()


def _stop(server: Server) -> dict:
    """Signal, wait ``stop_grace_s``, then SIGKILL the whole process group."""
    pid = _read_pid(server)
    if pid is not None:
        os.kill(pid, server.stop_signal)
        if not _wait_exit(pid, server.stop_grace_s):
            os.killpg(pid, signal.SIGKILL)
            _wait_exit(pid, 10.0)
    server.pid_file.unlink(missing_ok=True)
    return _status(server)


def _status(server: Server) -> dict:
    pid = _read_pid(server)
    if pid is None:  # "external": something we did not start answers on the port
        state = "external" if _port_open(server.port) else "stopped"
    else:
        state = "running" if server.healthy() else "unhealthy"
    return {"name": server.name, "engine": server.engine, "state": state, "pid": pid, "port": server.port,
            "endpoint": server.endpoint, "log": str(server.out_file)}


def _read_pid(server: Server) -> int | None:
    """The pid in our pid file if that very process (same start time) is still alive."""
    try:
        pid_text, _, started = server.pid_file.read_text().strip().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) and _start_time(pid) == started else None


def _alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return proc_stat(pid)[:1] != ["Z"]


def _wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _start_time(pid: int) -> str:
    fields = proc_stat(pid)
    return fields[19] if len(fields) > 19 else ""


def _as_user(user: str | None) -> dict:
    if user is None:
        return {}
    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _tail(server: Server, lines: int = 40) -> str:
    parts = []
    for log in (server.out_file, *server.logs):
        if log.exists():
            text = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log} (last {len(text)} lines)\n" + "\n".join(text))
    return "\n".join(parts) or "(no log written)"


def _ordered(names: Iterable[str] | None, default: set[str]) -> list[str]:
    wanted = set(default if names is None else names)
    unknown = wanted - set(KNOWN)
    if unknown:
        raise InfraError(f"unknown server(s) {sorted(unknown)}; known: {', '.join(KNOWN)}")
    return [n for n in KNOWN if n in wanted]


@contextmanager
def _lock(servers: list[Server]) -> Iterator[None]:
    """One ``up``/``down`` at a time per data dir (tests may run in parallel processes)."""
    if not servers:
        yield
        return
    data_dir = servers[0].home.parent
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
