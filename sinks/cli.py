"""``sentinel sink`` and ``sentinel blocklist`` (registered by infra/cli.py), and
``sentinel bench sinks``.

    sentinel sink postgres|redis|siem|marks|all     run sink loops until SIGTERM/SIGINT
    sentinel blocklist add ip 203.0.113.9 --ttl 1h --reason "manual"
    sentinel blocklist remove wallet 0xabc...
    sentinel blocklist list [ip|wallet]
    sentinel bench sinks --out sinks.json
"""

from __future__ import annotations

import argparse
import json
import logging
from datetime import UTC, datetime

from infra.settings import Settings, get_settings
from sinks.blocklist import KINDS, Blocklist, Entry
from sinks.config import SiemSettings, SinkSettings
from sinks.siem.rules import duration_ms

SINKS = ("postgres", "redis", "siem", "marks")


def build_loops(names: list[str], settings: Settings, conf: SinkSettings):
    from sinks.marks import MarksSink
    from sinks.postgres import PostgresSink
    from sinks.redis import RedisSink
    from sinks.runner import SinkLoop
    from sinks.siem.sink import SiemSink

    factories = {
        "postgres": lambda: PostgresSink(settings.postgres.dsn),
        "redis": lambda: RedisSink.from_url(settings.redis.dsn, conf),
        "siem": lambda: SiemSink.from_settings(settings, SiemSettings()),
        "marks": lambda: MarksSink(settings),
    }
    return [SinkLoop(settings, factories[name](), conf) for name in names]


def cmd_sink(args: argparse.Namespace) -> int:
    from sinks import health
    from sinks.runner import run_until_signal

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = get_settings()
    names = list(SINKS) if args.which == "all" else [args.which]
    loops = build_loops(names, settings, SinkSettings())
    health.start(settings, args.which, loops)  # metrics, /healthz, /readyz, consumer lag
    return run_until_signal(loops)


def _blocklist() -> Blocklist:
    import redis

    return Blocklist(redis.Redis.from_url(get_settings().redis.dsn))


def _show(entry: Entry) -> str:
    expires = (
        "never"
        if entry.expires_at_ms is None
        else datetime.fromtimestamp(entry.expires_at_ms / 1000, UTC).isoformat(timespec="seconds")
    )
    return f"{entry.kind:6} {entry.value:42} expires {expires:25} {entry.reason}"


def cmd_blocklist(args: argparse.Namespace) -> int:
    bl = _blocklist()
    if args.action == "add":
        ttl_s = duration_ms(args.ttl) / 1000 if args.ttl else None
        print(_show(bl.add(args.kind, args.value, ttl_s, args.reason)))
    elif args.action == "remove":
        removed = bl.remove(args.kind, args.value)
        print(f"{'removed' if removed else 'not listed'} {args.kind} {args.value}")
        return 0 if removed else 1
    else:
        for kind in [args.kind] if args.kind else KINDS:
            for entry in bl.list(kind):
                print(_show(entry))
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("sink", help="run sink loops (PostgreSQL, Redis, SIEM)")
    p.add_argument("which", choices=[*SINKS, "all"])
    p.set_defaults(func=cmd_sink)

    p = subparsers.add_parser("blocklist", help="IP and wallet blocklists (per-entry expiry)")
    actions = p.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="block a value")
    add.add_argument("kind", choices=KINDS)
    add.add_argument("value")
    add.add_argument("--ttl", help="expiry like 90s, 15m, 1h, 7d (default: permanent)")
    add.add_argument("--reason", default="manual")
    remove = actions.add_parser("remove", help="unblock a value")
    remove.add_argument("kind", choices=KINDS)
    remove.add_argument("value")
    show = actions.add_parser("list", help="entries in force")
    show.add_argument("kind", nargs="?", choices=KINDS)
    p.set_defaults(func=cmd_blocklist)


def cmd_bench(args: argparse.Namespace) -> int:
    from sinks.bench import run_bench

    report = run_bench(get_settings(), rows=args.rows)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report, indent=2))
    return 0


def add_bench_commands(bench_subparsers) -> None:
    p = bench_subparsers.add_parser("sinks", help="COPY rows/s, Redis ops/s, sink loop rows/s")
    p.add_argument("--out", required=True, help="JSON report path")
    p.add_argument("--rows", type=int, default=50_000)
    p.set_defaults(func=cmd_bench)
