"""``sentinel chain-listen`` killed (SIGKILL) mid-range and started again with the same command:
no gap and no duplicate on the topic, and every block checkpointed exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.evm import NodeHandle
from infra.process import stop_group
from infra.settings import Settings
from tests.integration.chain_fixtures import (
    PRICE,
    TicketChain,
    anvil,  # noqa: F401 (fixture)
    checkpoints,
    transfers,
    wait_for,
)

pytestmark = pytest.mark.integration
SALES = 40


class ListenerProcess:
    """The CLI in a subprocess; its log lines are collected by a reader thread."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path):
        self.lines: list[str] = []
        self.log = log_path.open("a")
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            self.log.write(line)

    def published(self, block: int) -> bool:
        if self.proc.poll() is not None and self.proc.returncode != 0:
            raise AssertionError(f"listener exited {self.proc.returncode}: {''.join(self.lines)}")
        return any(f"published blocks {block}-{block}:" in line for line in self.lines)

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self.reader.join(10)

    def stop(self, grace_s: float = 30.0) -> int:
        stop_group(self.proc, grace_s, kill_wait_s=grace_s)
        self.reader.join(10)
        self.log.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


@pytest.fixture
def processes() -> Iterator[list[ListenerProcess]]:
    started: list[ListenerProcess] = []
    yield started
    for process in started:
        process.stop()


def test_killed_listener_resumes_without_gap_or_duplicate(
    settings: Settings,
    env: dict[str, str],
    anvil: NodeHandle,  # noqa: F811
    processes: list[ListenerProcess],
    tmp_path: Path,
) -> None:
    chain = TicketChain(anvil.url)
    buyers = [chain.alice, chain.bob, chain.carol, chain.dave]
    sales = [chain.buy(buyers[i % 4]) for i in range(SALES)]
    last = sales[-1].block_number
    chain.mine(2)
    argv = [sys.executable, "-m", "connectors.chain_cli", "chain-listen", "--from-block", "0"]
    argv += ["--blocks-per-round", "1", "--poll-interval", "0.05", "--confirmations", "2"]
    argv += ["--contracts", ",".join(chain.addresses)]
    child_env = {**env, "EVM_RPC_URL": anvil.url, "EVM_CHAIN_ID": "31337"}

    def start() -> ListenerProcess:
        processes.append(ListenerProcess(argv, child_env, tmp_path / "listener.log"))
        return processes[-1]

    first = start()
    kill_after = sales[5].block_number
    wait_for(lambda: first.published(kill_after), what=f"block {kill_after} published")
    first.kill()
    at_kill = checkpoints(settings)[-1].block
    assert kill_after <= at_kill < last, "the kill did not land mid-range"

    second = start()
    wait_for(lambda: second.published(last), what=f"block {last} published after restart")
    assert second.stop() == 0

    marks = [m.block for m in checkpoints(settings)]
    assert marks == list(range(0, marks[-1] + 1)), "every block checkpointed exactly once"
    records = transfers(settings)
    assert len({r["_id"] for r in records}) == len(records) == 2 * SALES
    assert [(r["tx_hash"], r["kind"], r["token_id"]) for r in records] == [
        (tx.hash, kind, str(token))
        for token, tx in enumerate(sales, start=1)
        for kind in ("MINT", "SALE")
    ]
    assert {r["price_wei"] for r in records if r["kind"] == "SALE"} == {str(PRICE)}
