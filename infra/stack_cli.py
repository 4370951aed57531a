"""``sentinel up|down|status|health``: the whole system on the embedded stack (infra/stack.py).

``infra.cli`` calls ``add_commands(subparsers)``.
"""

from __future__ import annotations

import argparse
import json

from infra.settings import get_settings


def cmd_up(args: argparse.Namespace) -> int:
    from infra import stack, supervisor

    settings = get_settings()
    results = stack.up(settings, args.timeout)
    for name, (ok, why) in results.items():
        print(f"{name:15} {'healthy' if ok else 'NOT HEALTHY':12} {why}")
    bad = [name for name, (ok, _) in results.items() if not ok]
    if bad:
        print(f"not healthy within {args.timeout:.0f} s: {', '.join(bad)}; "
              f"logs in {supervisor.log_dir(settings)}/")
    return 1 if bad else 0


def cmd_down(args: argparse.Namespace) -> int:
    from infra import stack

    stopped, servers = stack.down(get_settings())
    print(f"services stopped: {', '.join(stopped) or 'none running'}")
    for name, info in servers.items():
        print(f"{name:9} {info['state']}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from infra import stack

    servers, rows = stack.status(get_settings())
    if args.json:
        print(json.dumps({"servers": servers, "services": rows}, indent=1, default=str))
        return 0
    for name, info in servers.items():
        print(f"{name:15} {info['state']:11} pid={info.get('pid') or '-':<8} {info['endpoint']}")
    print()
    for row in rows:
        lag = "-" if row["lag"] is None else row["lag"]
        print(f"{row['name']:15} {row['state']:11} pid={row['pid'] or '-':<8} "
              f"up={row['uptime_s']:>6}s {'healthy' if row['healthy'] else 'UNHEALTHY':9} "
              f"lag={lag:<7} {row['health']}")
    return 0 if all(r["healthy"] for r in rows) else 1


def cmd_health(args: argparse.Namespace) -> int:
    """One service's health check, for compose (exit 0 healthy, 1 not)."""
    from infra import health, services

    service = services.by_name()[args.service]
    ok, why = health.check(service, get_settings(), state=None)
    print(why)
    return 0 if ok else 1


def add_commands(sub) -> None:
    from infra.services import SERVICES

    p = sub.add_parser("up", help="start servers and every service, supervised; wait healthy")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for health")
    p.set_defaults(func=cmd_up)
    p = sub.add_parser("down", help="stop every service, then the servers `up` started")
    p.set_defaults(func=cmd_down)
    p = sub.add_parser("status", help="servers and services: pid, health, consumer lag")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("health", help="one service's health check (compose)")
    p.add_argument("service", choices=[s.name for s in SERVICES])
    p.set_defaults(func=cmd_health)
