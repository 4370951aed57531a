"""A local EVM node (anvil, from npm ``@foundry-rs/anvil``) on 127.0.0.1, for tests and demos.

Install once (the package ships the anvil binary; no other download):
    npm install --prefix connectors/contracts --no-audit --no-fund

``start_node(port, data)`` starts anvil in its own session and waits until it answers JSON-RPC;
``stop_node(handle)`` stops that process (SIGTERM, then SIGKILL after a grace period). With
``data``, the chain's state is loaded from and saved to ``data/state.json`` (a restart keeps it)
and the log goes to ``data/anvil.log``; without it, to a temporary file.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from infra.observe import free_port
from infra.settings import REPO_ROOT, Settings

if TYPE_CHECKING:
    from infra.local import Server

NODE_MODULES = REPO_ROOT / "connectors" / "contracts" / "node_modules"
INSTALL = "npm install --prefix connectors/contracts --no-audit --no-fund"
_PLATFORMS = {
    ("Linux", "x86_64"): "linux-amd64",
    ("Linux", "aarch64"): "linux-arm64",
    ("Darwin", "x86_64"): "darwin-amd64",
    ("Darwin", "arm64"): "darwin-arm64",
}


class EvmNodeError(RuntimeError):
    """anvil is missing, did not start, or did not answer; the message says why."""


@dataclass
class NodeHandle:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid


def anvil_binary() -> Path:
    """The anvil binary of the npm package (the platform package's, run directly so that
    signals reach anvil itself), else one on PATH."""
    suffix = _PLATFORMS.get((platform.system(), platform.machine()))
    candidates = (
        [NODE_MODULES / "@foundry-rs" / f"anvil-{suffix}" / "bin" / "anvil"] if suffix else []
    )
    found = shutil.which("anvil")
    candidates += [Path(found)] if found else []
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise EvmNodeError(f"anvil not found: run `{INSTALL}` in {REPO_ROOT}")


def start_node(
    port: int = 0,
    data: Path | None = None,
    *,
    chain_id: int = 31337,
    deadline_s: float = 30.0,
) -> NodeHandle:
    """Start anvil on 127.0.0.1:``port`` (0: a free port) and wait until it answers."""
    port = port or free_port()
    argv = [str(anvil_binary()), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--chain-id", str(chain_id), "--accounts", "10"]
    if data is not None:
        data.mkdir(parents=True, exist_ok=True)
        argv += ["--state", str(data / "state.json")]
        log_path = data / "anvil.log"
    else:
        log_path = Path(tempfile.mkstemp(prefix="anvil-", suffix=".log")[1])
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    handle = NodeHandle(process, port, log_path)
    try:
        _await_ready(handle, time.monotonic() + deadline_s)
    except BaseException:
        stop_node(handle)
        raise
    return handle


def stop_node(handle: NodeHandle, grace_s: float = 10.0) -> None:
    """Stop the node we started (SIGTERM, then SIGKILL); saves its state when it has one."""
    if handle.process.poll() is not None:
        return
    handle.process.send_signal(signal.SIGTERM)
    try:
        handle.process.wait(grace_s)
    except subprocess.TimeoutExpired:
        handle.process.kill()
        handle.process.wait(grace_s)


def rpc(url: str, method: str, *params: object, timeout_s: float = 5.0) -> object:
    """One JSON-RPC call (no web3 needed): the result, or EvmNodeError with the error."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        answer = json.loads(response.read())
    if answer.get("error"):
        raise EvmNodeError(f"{method}: {answer['error']}")
    return answer.get("result")


def _await_ready(handle: NodeHandle, deadline: float) -> None:
    while True:
        if handle.process.poll() is not None:
            raise EvmNodeError(f"anvil exited ({handle.process.returncode}): {_tail(handle)}")
        try:
            rpc(handle.url, "eth_chainId", timeout_s=1.0)
            return
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            raise EvmNodeError(f"anvil did not answer on {handle.url}: {_tail(handle)}")
        time.sleep(0.05)


def _tail(handle: NodeHandle, lines: int = 20) -> str:
    try:
        return "\n".join(handle.log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def server_spec(settings: Settings) -> Server:
    """The local EVM node as an embedded server of ``infra.local`` (``sentinel up`` starts it
    for the chain listener): anvil on ``EVM_RPC_URL``'s port, its chain kept in
    ``<data>/evm/state.json`` (saved every 30 s and on stop, loaded at start)."""
    from infra.local import InfraError, Server

    home, port = settings.stream.data_dir / "evm", settings.evm.port
    url = f"http://127.0.0.1:{port}"

    def prepare() -> None:
        try:
            anvil_binary()
        except EvmNodeError as exc:
            raise InfraError(f"evm: {exc}") from exc

    def argv() -> list[str]:
        return [str(anvil_binary()), "--host", "127.0.0.1", "--port", str(port),
                "--chain-id", str(settings.evm.chain_id), "--accounts", "10",
                "--state", str(home / "state.json"), "--state-interval", "30"]

    def healthy() -> bool:
        try:
            rpc(url, "eth_chainId", timeout_s=1.0)
        except (OSError, urllib.error.URLError, EvmNodeError):
            return False
        return True

    return Server(name="evm", engine="anvil", home=home, port=port, endpoint=url, argv=argv,
                  healthy=healthy, prepare=prepare, stop_grace_s=15.0)
