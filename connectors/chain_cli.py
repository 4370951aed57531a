"""``sentinel chain-listen``: run the chain listener.

``infra.cli`` calls ``add_commands(subparsers)``; ``python -m connectors.chain_cli chain-listen``
runs the same command without the rest of the CLI (the tests start it that way).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING

from infra.settings import Settings, get_settings

if TYPE_CHECKING:
    from connectors.chain import ChainListener, ListenerConfig


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "chain-listen",
        help="follow the EVM chain and publish ticket transfers to Kafka",
        description="Publishes ERC-721/ERC-1155 transfers and marketplace sales of the "
        "configured contracts (EVM_CONTRACTS) from blocks at least EVM_CONFIRMATIONS deep.",
    )
    parser.add_argument("--from-block", type=int, help="start here when there is no checkpoint")
    parser.add_argument("--to-block", type=int, help="stop after this block")
    parser.add_argument("--once", action="store_true", help="stop when caught up")
    parser.add_argument("--name", default="default", help="listener name (checkpoint key)")
    parser.add_argument("--contracts", help="comma-separated addresses (default EVM_CONTRACTS)")
    parser.add_argument("--confirmations", type=int, help="default EVM_CONFIRMATIONS")
    parser.add_argument("--blocks-per-round", type=int, default=100)
    parser.add_argument("--poll-interval", type=float, default=1.0, help="seconds")
    parser.add_argument(
        "--no-transactions",
        action="store_true",
        help="at-least-once without Kafka transactions (brokers that lack them)",
    )
    parser.set_defaults(func=run_command)


def config_from_args(args: argparse.Namespace, settings: Settings) -> ListenerConfig:
    from connectors.chain import ListenerConfig

    contracts = args.contracts if args.contracts is not None else settings.evm.contracts
    confirmations = args.confirmations
    return ListenerConfig(
        chain_id=settings.evm.chain_id,
        contracts=parse_contracts(contracts),
        confirmations=settings.evm.confirmations if confirmations is None else confirmations,
        name=args.name,
        from_block=args.from_block,
        to_block=args.to_block,
        max_blocks_per_round=args.blocks_per_round,
        poll_interval_s=args.poll_interval,
    )


def serve_probes(settings: Settings, listener: ChainListener):
    """Metrics, ``/healthz`` (the last round did not fail) and ``/readyz`` (also: at most one
    round of blocks behind the safe head) on METRICS_BIND:METRICS_CHAIN_PORT."""
    from infra import observe

    def alive() -> tuple[bool, dict]:
        last = listener.last.block if listener.last else None
        details = {"last_block": last, "blocks_behind": listener.behind,
                   "round_error": listener.round_error}  # fmt: skip
        return listener.round_error is None, details

    def ready() -> tuple[bool, dict]:
        ok, details = alive()
        behind = listener.behind
        caught_up = behind is not None and behind <= listener.config.max_blocks_per_round
        return ok and caught_up, details

    conf = settings.metrics
    probes = {"/healthz": alive, "/readyz": ready}
    return observe.serve(conf.bind, conf.chain_port, "METRICS_CHAIN_PORT", probes)


def parse_contracts(text: str) -> frozenset[str]:
    return frozenset(a.strip().lower() for a in text.split(",") if a.strip())


def run_command(args: argparse.Namespace) -> int:
    from connectors.chain import ChainListener
    from connectors.chain_kafka import KafkaChainOutput
    from connectors.chain_rpc import ChainRpc

    settings = get_settings()
    config = config_from_args(args, settings)
    output = KafkaChainOutput(
        settings, config.chain_id, config.name, transactional=not args.no_transactions
    )
    stop = threading.Event()
    rpc = ChainRpc(settings.evm.rpc_url, wait=stop.wait)
    listener = ChainListener(rpc, output, config, stop=stop)

    def _stop(signum: int, frame: FrameType | None) -> None:
        listener.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server = serve_probes(settings, listener)
    try:
        listener.run(once=args.once)
    finally:
        output.close()
        if server is not None:
            server.close()
    last = listener.last
    print(f"chain-listen: last published block {last.block if last else None}", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(prog="sentinel")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
