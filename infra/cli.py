"""The ``sentinel`` command. Each folder registers its own subcommands; this file only routes.

    sentinel infra up|down|status      embedded Kafka, PostgreSQL and Redis on 127.0.0.1
    sentinel topics create|list        the topic registry, created idempotently
    sentinel db migrate|maintain       migrations and retention (--every 1h: the service)
    sentinel worker                    the Faust worker (agents in streams/)
    sentinel up|down|status            every service, supervised, on the embedded stack
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable
from datetime import date

from infra.settings import get_settings

# Modules that add their own subcommands with add_commands(subparsers).
PLUGINS = ("streams.cli", "models.cli", "connectors.cli", "connectors.chain_cli", "sinks.cli",
           "infra.stack_cli", "infra.security_cli", "connectors.console.cli")


def _print(data) -> None:
    print(json.dumps(data, indent=2, default=str))


def cmd_infra(args: argparse.Namespace) -> int:
    from infra import local

    settings = get_settings()
    names = args.servers or None
    if args.action == "up":
        result = local.start_all(settings, names)
    elif args.action == "down":
        result = local.stop_all(settings, names)
    else:
        result = local.status(settings, names)
    for name, info in result.items():
        print(f"{name:9} {info['state']:10} pid={info.get('pid') or '-':<8} {info['endpoint']}")
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from infra import admin

    settings = get_settings()
    if args.action == "create":
        for name, state in admin.create_topics(settings).items():
            print(f"{state:8} {name}")
    else:
        for name, partitions in admin.describe_topics(settings).items():
            print(f"{partitions:3} partitions  {name}")
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from infra import db

    settings = get_settings()
    dsn = settings.postgres.dsn
    if args.action == "migrate":
        applied = db.migrate(dsn)
        print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
        print(f"schema at {db.applied(dsn)[-1]}")
        return 0
    return _maintain(args, settings)


def _maintain(args: argparse.Namespace, settings) -> int:
    import logging

    import psycopg

    from infra import maintenance, retention
    from sinks.siem.rules import duration_ms

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.every:
        if args.as_of:
            print("sentinel db maintain: --as-of runs once; drop --every", file=sys.stderr)
            return 2
        return maintenance.run_every(settings, duration_ms(args.every) / 1000, args.ahead)
    try:
        report = maintenance.run_once(settings.postgres.dsn, args.as_of, args.ahead)
    except retention.MaintenanceError as exc:
        print(exc.report.summary())
        print(f"sentinel db maintain: {exc}", file=sys.stderr)
        return 1
    except psycopg.Error as exc:
        print(f"sentinel db maintain: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from streams.worker import main

    main(args.faust_args)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sentinel", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("infra", help="embedded servers on 127.0.0.1")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("servers", nargs="*", help="kafka, postgres, redis (default: all needed)")
    p.set_defaults(func=cmd_infra)

    p = sub.add_parser("topics", help="create or list the registered topics")
    p.add_argument("action", choices=["create", "list"])
    p.set_defaults(func=cmd_topics)

    p = sub.add_parser("db", help="PostgreSQL migrations and retention")
    p.add_argument("action", choices=["migrate", "maintain"])
    p.add_argument("--every", help="maintain: run on this schedule (e.g. 1h) until SIGTERM")
    p.add_argument("--as-of", type=date.fromisoformat, help="maintain once as of this day (UTC)")
    p.add_argument("--ahead", type=int, default=7, help="days of partitions to create ahead")
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("worker", help="run the Faust worker")
    p.add_argument("faust_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_worker)

    bench = sub.add_parser("bench", help="benchmarks that write a JSON report")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    for module in PLUGINS:
        _plugin(module, "add_commands", sub)
        _plugin(module, "add_bench_commands", bench_sub)
    return parser


def _plugin(module: str, hook: str, subparsers) -> None:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:  # a real import error inside the plugin
            raise
        return
    register: Callable | None = getattr(mod, hook, None)
    if register is not None:
        register(subparsers)


def main(argv: list[str] | None = None) -> int:
    from infra.local import InfraError
    from infra.observe import MetricsBindError

    args = build_parser().parse_args(argv)
    if args.command == "bench":  # a stopped benchmark still deletes its scratch topics
        from infra.process import interrupt_on_term

        interrupt_on_term()
    try:
        return int(args.func(args) or 0)
    except (InfraError, MetricsBindError) as exc:
        print(f"sentinel {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
