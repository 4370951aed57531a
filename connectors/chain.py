"""The chain listener: follows an EVM chain and publishes ticket NFT activity.

In the manner of ethereum-etl's ``streamer.py``: a last-published-block checkpoint, a
confirmation lag (only blocks at most ``head - confirmations`` are read), at most
``max_blocks_per_round`` blocks a round, and a loop on ``self.running``. Its checkpoint is
durable (a compacted Kafka topic, written in the round's transaction; ``chain_kafka``).

One round: headers of the range (each block's parent hash must be the previous block's
hash, the first one's the checkpoint's), the range's logs of the configured contracts (every
log must belong to the header we read for its block, else the chain moved under us and the
round is read again), decode, and commit records + checkpoint. If the checkpoint's block is no
longer canonical, a reorg deeper than the confirmation depth happened: the listener finds the
fork point among the hashes it published, reports a ``chain_reorg`` security event, moves the
checkpoint back to the fork and re-publishes the canonical blocks from there.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from connectors.chain_checkpoint import Checkpoint
from connectors.chain_decode import TICKET_TOPICS, Block, Log, decode_logs
from connectors.chain_rpc import BlockNotFound, ChainRpc, RpcError
from connectors.metrics import (
    CHAIN_BEHIND,
    CHAIN_PUBLISHED,
    CHAIN_RECORDS,
    CHAIN_REORGS,
    CHAIN_ROUND_ERRORS,
    CHAIN_SAFE_HEAD,
)
from infra.producing import OutputError  # a round not committed: none of it counts

log = logging.getLogger(__name__)


class ChainMoved(RuntimeError):
    """The chain changed while a round was read (a reorg at the tip): read the round again."""


# A round that fails with one of these is read again after the poll interval.
ROUND_ERRORS: tuple[type[Exception], ...] = (RpcError, ChainMoved, OutputError)


class ChainOutput(Protocol):
    def load_checkpoint(self) -> Checkpoint | None: ...

    def commit(
        self, records: Sequence[dict], checkpoint: Checkpoint, events: Sequence[dict] = ()
    ) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ListenerConfig:
    chain_id: int
    contracts: frozenset[str]  # lower-case addresses
    confirmations: int = 3
    name: str = "default"
    from_block: int | None = None  # start here when there is no checkpoint (a backfill)
    to_block: int | None = None  # stop after this block
    max_blocks_per_round: int = 100
    poll_interval_s: float = 1.0
    history: int = 256  # published block hashes kept to find a fork point


class ChainListener:
    def __init__(
        self,
        rpc: ChainRpc,
        output: ChainOutput,
        config: ListenerConfig,
        *,
        stop: threading.Event | None = None,
    ):
        """``stop``: an event shared with the RPC client's backoff (``ChainRpc(wait=stop.wait)``)
        so that ``stop()`` also cuts a retry wait short."""
        self.rpc, self.output, self.config = rpc, output, config
        self.running = False
        self._stopped = stop or threading.Event()
        self.last: Checkpoint | None = None
        self.next_block: int | None = None
        self.published: OrderedDict[int, str] = OrderedDict()  # block number -> hash
        self.labels = (str(config.chain_id), config.name)
        self.behind: int | None = None  # blocks between the safe head and the checkpoint
        self.round_error: str | None = None  # the last round's failure, None once one succeeds

    # ------------------------------------------------------------ loop

    def run(self, *, once: bool = False) -> None:
        """Follow the chain until ``stop()``; with ``once``, until caught up (or ``to_block``)."""
        self.running = not self._stopped.is_set()
        while self.running:
            try:
                progressed = self.poll()
                self.round_error = None
            except ROUND_ERRORS as exc:
                log.warning("round failed, retrying: %s", exc)
                self.round_error = f"{type(exc).__name__}: {exc}"
                CHAIN_ROUND_ERRORS.labels(*self.labels, type(exc).__name__).inc()
                progressed = 0
            if self.done or (once and progressed == 0):
                break
            if progressed == 0:
                self._stopped.wait(self.config.poll_interval_s)
        self.running = False

    def stop(self) -> None:
        self.running = False
        self._stopped.set()

    @property
    def done(self) -> bool:
        end = self.config.to_block
        return end is not None and self.last is not None and self.last.block >= end

    # ------------------------------------------------------------ one round

    def poll(self) -> int:
        """One round; returns the number of blocks published (0: nothing new yet)."""
        safe = self.rpc.block_number() - self.config.confirmations
        start = self._start(safe)
        self._observe(safe)
        end = min(safe, start + self.config.max_blocks_per_round - 1)
        if self.config.to_block is not None:
            end = min(end, self.config.to_block)
        if end < start:
            return 0
        blocks = self.rpc.blocks(start, end)
        if self.last is not None and blocks[0].parent_hash != self.last.hash:
            self._rewind(blocks[0])
            return 0
        _check_chained(blocks)
        records = self._records(start, end, blocks)
        checkpoint = Checkpoint(blocks[-1].number, blocks[-1].hash)
        self.output.commit(records, checkpoint)
        self._advance(blocks, checkpoint)
        CHAIN_RECORDS.labels(*self.labels).inc(len(records))
        self._observe(safe)
        log.info("published blocks %d-%d: %d records", start, end, len(records))
        return len(blocks)

    def _observe(self, safe: int) -> None:
        CHAIN_SAFE_HEAD.labels(*self.labels).set(safe)
        if self.last is not None:
            CHAIN_PUBLISHED.labels(*self.labels).set(self.last.block)
        self.behind = max(0, safe - (self.next_block or 0) + 1)
        CHAIN_BEHIND.labels(*self.labels).set(self.behind)

    def _start(self, safe: int) -> int:
        if self.next_block is None:
            self.last = self.output.load_checkpoint()
            self.next_block = self._initial(safe)
            if self.last is not None:
                self.published[self.last.block] = self.last.hash
        return self.next_block

    def _initial(self, safe: int) -> int:
        """Resume after the checkpoint; without one, ``from_block``, else the safe head."""
        if self.last is not None:
            return self.last.block + 1
        if self.config.from_block is not None:
            return self.config.from_block
        return max(safe, 0)

    def _records(self, start: int, end: int, blocks: list[Block]) -> list[dict[str, Any]]:
        if not self.config.contracts:
            return []
        by_number = {b.number: b for b in blocks}
        logs = self.rpc.logs(start, end, sorted(self.config.contracts), TICKET_TOPICS)
        _check_logs(logs, by_number)
        return decode_logs(logs, by_number, self.config.chain_id, self.config.contracts)

    def _advance(self, blocks: list[Block], checkpoint: Checkpoint) -> None:
        for block in blocks:
            self.published[block.number] = block.hash
        while len(self.published) > self.config.history:
            self.published.popitem(last=False)
        self.last, self.next_block = checkpoint, checkpoint.block + 1

    # ------------------------------------------------------------ deep reorgs

    def _rewind(self, first: Block) -> None:
        """The checkpoint's block left the canonical chain: move back to the fork point."""
        assert self.last is not None
        fork = self._fork_point()
        event = reorg_event(self.config, self.last, first, fork)
        self.output.commit([], fork, events=[event])
        CHAIN_REORGS.labels(*self.labels).inc()
        log.error(
            "reorg deeper than %d confirmations: rewound from %d to %d",
            self.config.confirmations,
            self.last.block,
            fork.block,
        )
        for number in [n for n in self.published if n > fork.block]:
            del self.published[number]
        self.last, self.next_block = fork, fork.block + 1

    def _fork_point(self) -> Checkpoint:
        """The newest published block still canonical; else the oldest we know minus one."""
        for number in reversed(list(self.published)):
            try:
                canonical = self.rpc.block(number)
            except BlockNotFound:
                continue
            if canonical.hash == self.published[number]:
                return Checkpoint(number, canonical.hash)
        assert self.last is not None
        depth = max(self.config.history, self.config.confirmations)
        oldest = min(self.published, default=self.last.block) - 1
        number = max(min(oldest, self.last.block - depth), 0)
        return Checkpoint(number, self.rpc.block(number).hash)


def _check_chained(blocks: list[Block]) -> None:
    for parent, child in zip(blocks, blocks[1:], strict=False):
        if child.parent_hash != parent.hash:
            raise ChainMoved(f"block {child.number} does not follow {parent.number}")


def _check_logs(logs: list[Log], by_number: dict[int, Block]) -> None:
    for entry in logs:
        block = by_number.get(entry.block_number)
        if block is None or entry.block_hash != block.hash:
            raise ChainMoved(f"log of block {entry.block_number} from another fork")


def reorg_event(
    config: ListenerConfig, last: Checkpoint, first: Block, fork: Checkpoint
) -> dict[str, Any]:
    """A SecurityEvent: published blocks after ``fork`` are orphaned."""
    return {
        "event_id": f"chain_reorg:{config.chain_id}:{last.block}:{last.hash}",
        "occurred_at": first.time_ms,
        "kind": "chain_reorg",
        "severity": "HIGH",
        "source": "listener",
        "ip": None,
        "wallet": None,
        "user_id": None,
        "purchase_id": None,
        "details": {
            "chain_id": str(config.chain_id),
            "listener": config.name,
            "orphaned_from": str(fork.block + 1),
            "orphaned_to": str(last.block),
            "orphaned_hash": last.hash,
            "new_parent_hash": first.parent_hash,
            "confirmations": str(config.confirmations),
        },
    }
