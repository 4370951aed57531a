"""CLI commands of the connectors: ``gateway``, ``publish KIND FILE.jsonl``, ``bench gateway``.

``infra.cli`` calls ``add_commands(subparsers)`` and ``add_bench_commands(bench_subparsers)``;
each handler takes the parsed ``argparse.Namespace`` and returns an exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from connectors.validation import KINDS
from infra.settings import get_settings

MAX_LISTED = 50  # rejected lines printed in full; the rest are counted (--json lists all)


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("gateway", help="run the webhook gateway (HTTP) on uvicorn")
    p.add_argument("--host", default=None, help="default: WEBHOOK_HOST (127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="default: WEBHOOK_PORT (8080)")
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=gateway)

    p = subparsers.add_parser("publish", help="publish a JSONL file of records to Kafka")
    p.add_argument("kind", choices=sorted(KINDS), help="record kind (one record per line)")
    p.add_argument("file", type=Path, help="JSONL: bare records or simulator envelopes")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=publish)


def add_bench_commands(bench_subparsers: argparse._SubParsersAction) -> None:
    p = bench_subparsers.add_parser("gateway", help="load-test the webhook gateway")
    p.add_argument("--out", type=Path, required=True, help="JSON report")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    p.add_argument("--rate", type=int, default=500, help="fixed request rate for latency")
    p.add_argument("--concurrency", type=int, default=64, help="connections at full speed")
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    p.set_defaults(func=bench_gateway)


def gateway(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from connectors.webhook import create_app
    from infra.secrets import WeakSetup, check_bind

    settings = get_settings()
    host = args.host or settings.webhook.host
    try:
        check_bind(host, settings)
    except WeakSetup as exc:
        print(f"sentinel gateway: {exc}", file=sys.stderr)
        return 2
    level = args.log_level.upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    uvicorn.run(
        create_app(settings),
        host=host,
        port=args.port or settings.webhook.port,
        log_level=args.log_level,
        access_log=False,  # access logs would hold raw client IPs
        limit_concurrency=settings.webhook.limit_concurrency,
    )
    return 0


def publish(args: argparse.Namespace) -> int:
    from connectors.bulk import Summary, load_jsonl
    from connectors.publisher import Publisher

    if not args.file.is_file():
        print(f"sentinel publish: no such file: {args.file}", file=sys.stderr)
        return 1

    def progress(s: Summary) -> None:
        print(f"\r{s.lines} lines: {s.accepted} acknowledged, {s.rejected} rejected, "
              f"{s.skipped} skipped", end="", file=sys.stderr, flush=True)  # fmt: skip

    with Publisher(get_settings()) as publisher:
        summary = load_jsonl(
            publisher, KINDS[args.kind], args.file, None if args.quiet else progress
        )
    if not args.quiet:
        print(file=sys.stderr)
    _print_summary(summary, args.json)
    return 0 if summary.rejected == 0 else 2


def _print_summary(summary, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary.as_dict(), indent=1))
        return
    print(f"accepted {summary.accepted}, rejected {summary.rejected}, skipped {summary.skipped} "
          f"(of {summary.lines} lines)")  # fmt: skip
    for rejection in summary.rejections[:MAX_LISTED]:
        print(f"  {rejection}")
    if summary.rejected > MAX_LISTED:
        print(f"  ... and {summary.rejected - MAX_LISTED} more (use --json for all)")


def bench_gateway(args: argparse.Namespace) -> int:
    from connectors.bench import run_gateway_bench

    report = run_gateway_bench(
        get_settings(),
        duration_s=args.duration,
        rate=args.rate,
        concurrency=args.concurrency,
        workers=args.workers,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: report[k] for k in ("accepted_per_s", "at_rate", "latency_ms")}))
    return 0
