"""The services of infra/services.py as supervised background processes, by supervisord.

``start(settings, services, env)`` writes ``<data>/supervisor/supervisord.conf`` from the
registry, starts supervisord (a daemon of its own) or, when it runs already, applies the
changed configuration as ``supervisorctl update`` would; ``stop`` stops every service
(SIGTERM to the process group, SIGKILL after ``STOP_WAIT_S``) and then supervisord;
``processes`` asks it for pid, state and log of each service.

Restarts: a service that exits is started again at once; one that dies within
``START_SECS`` of starting is retried after 1, 2, 3, ... s, ``START_RETRIES`` times, then left
FATAL (``sentinel status`` shows it, its log says why). Logs: ``<data>/logs/<service>.log``.
"""

from __future__ import annotations

import hashlib
import shlex
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Mapping
from pathlib import Path

from supervisor.xmlrpc import SupervisorTransport

from infra.local import InfraError
from infra.services import Service, start_order
from infra.settings import REPO_ROOT, Settings

START_SECS = 5
START_RETRIES = 10
STOP_WAIT_S = 20  # Faust may ignore SIGTERM while it shuts down (DESIGN.md "Known facts")
MAX_SOCKET_PATH = 100  # AF_UNIX paths are limited to ~108 bytes


class SupervisorError(InfraError):
    """supervisord did not start or answer; the message names its log (the CLI prints it)."""


def home(settings: Settings) -> Path:
    return settings.stream.data_dir / "supervisor"


def log_dir(settings: Settings) -> Path:
    return settings.stream.data_dir / "logs"


def socket_path(settings: Settings) -> Path:
    path = home(settings) / "supervisor.sock"
    if len(str(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    return Path(f"/tmp/sentinel-supervisor-{digest}.sock")


def render(settings: Settings, services: list[Service],
           env: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """supervisord.conf for ``services`` (pure): one program each, dependencies first."""
    logs, sock = log_dir(settings), socket_path(settings)
    parts = [
        f"[unix_http_server]\nfile={_esc(sock)}\nchmod=0700\n",
        f"[supervisord]\nlogfile={_esc(logs / 'supervisord.log')}\n"
        f"pidfile={_esc(home(settings) / 'supervisord.pid')}\nchildlogdir={_esc(logs)}\n"
        f"directory={_esc(REPO_ROOT)}\nidentifier=sentinel\n",
        "[rpcinterface:supervisor]\n"
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n",
        f"[supervisorctl]\nserverurl=unix://{_esc(sock)}\n",
    ]
    for priority, service in enumerate(start_order(services), start=1):
        parts.append(_program(settings, service, priority * 10, (env or {}).get(service.name)))
    return "\n".join(parts)


def _program(settings: Settings, service: Service, priority: int,
             env: Mapping[str, str] | None) -> str:
    argv = [sys.executable, "-m", "infra.cli", *service.argv]
    variables = {"PYTHONUNBUFFERED": "1", **(env or {})}
    environment = ",".join(f'{k}="{_esc(v, 2)}"' for k, v in variables.items())
    return (
        f"[program:{service.name}]\n"
        f"command={_esc(shlex.join(argv), 2)}\ndirectory={_esc(REPO_ROOT, 2)}\n"
        f"priority={priority}\nautostart=true\nautorestart=true\n"
        f"startsecs={START_SECS}\nstartretries={START_RETRIES}\n"
        f"stopsignal=TERM\nstopwaitsecs={STOP_WAIT_S}\nstopasgroup=true\nkillasgroup=true\n"
        f"redirect_stderr=true\nstdout_logfile={_esc(log_dir(settings) / service.name, 2)}.log\n"
        "stdout_logfile_maxbytes=50MB\nstdout_logfile_backups=3\n"
        f"environment={environment}\n"
    )


def _esc(value: object, levels: int = 1) -> str:
    """supervisord expands ``%(name)s`` in its values: a literal percent sign is doubled,
    twice in program sections (read by ConfigParser's interpolation, then expanded again)."""
    return str(value).replace("%", "%" * 2**levels)


def rpc(settings: Settings, timeout_s: float = 10.0) -> xmlrpc.client.ServerProxy:
    transport = SupervisorTransport(None, None, f"unix://{socket_path(settings)}")
    transport.timeout = timeout_s
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


def running(settings: Settings) -> bool:
    try:
        return rpc(settings, 2.0).supervisor.getState()["statename"] == "RUNNING"
    except (OSError, xmlrpc.client.Error):
        return False


def start(settings: Settings, services: list[Service],
          env: Mapping[str, Mapping[str, str]] | None = None) -> None:
    """Write the configuration, then start supervisord or bring the running one up to date."""
    conf = home(settings) / "supervisord.conf"
    for folder in (home(settings), log_dir(settings)):
        folder.mkdir(parents=True, exist_ok=True)
    conf.write_text(render(settings, services, env))
    if running(settings):
        _update(settings)
        return
    out = subprocess.run([sys.executable, "-m", "supervisor.supervisord", "-c", str(conf)],
                         capture_output=True, text=True, check=False, cwd=REPO_ROOT)
    if out.returncode != 0:
        raise SupervisorError(f"supervisord did not start: {(out.stderr or out.stdout).strip()}")
    deadline = time.monotonic() + 15
    while not running(settings):
        if time.monotonic() > deadline:
            raise SupervisorError(f"supervisord did not answer; see {log_dir(settings)}"
                                  "/supervisord.log")
        time.sleep(0.2)


def _update(settings: Settings) -> None:
    """As ``supervisorctl update``: reread, drop removed and changed programs, add the new."""
    server = rpc(settings, 60.0).supervisor
    [[added, changed, removed]] = server.reloadConfig()
    for name in (*removed, *changed):
        server.stopProcessGroup(name)
        server.removeProcessGroup(name)
    for name in (*changed, *added):
        server.addProcessGroup(name)
    for info in server.getAllProcessInfo():
        if info["statename"] in ("STOPPED", "EXITED", "FATAL"):
            server.startProcess(info["name"], False)


def stop(settings: Settings) -> list[str]:
    """Stop every service, then supervisord; returns the names of what was stopped."""
    if not running(settings):
        return []
    server = rpc(settings, STOP_WAIT_S * 3).supervisor
    names = [i["name"] for i in server.getAllProcessInfo() if i["pid"]]
    server.stopAllProcesses(True)
    pid = server.getPID()
    server.shutdown()
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return names


def processes(settings: Settings) -> dict[str, dict]:
    """Per service that supervisord runs: pid, state (RUNNING, BACKOFF, FATAL, ...), uptime
    in seconds, log file. Empty when supervisord is not running."""
    if not running(settings):
        return {}
    out = {}
    for info in rpc(settings).supervisor.getAllProcessInfo():
        uptime = info["now"] - info["start"] if info["statename"] == "RUNNING" else 0
        out[info["name"]] = {"pid": info["pid"] or None, "state": info["statename"],
                             "uptime_s": uptime, "log": info["stdout_logfile"],
                             "detail": info["spawnerr"] or info["description"]}
    return out


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()
