"""CLI of the console: ``console``, ``users add|key|passwd|list|ensure-admin``, ``bench
console``. Registered by infra/cli.py; each handler returns an exit code.

    sentinel users add alice --role analyst      prints a generated password once
    sentinel users key ci-reader                 prints a new API key once
    sentinel users ensure-admin [--reset]        creates `admin` if no admin exists
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from infra.settings import get_settings


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("console", help="run the operator console (HTTP) on uvicorn")
    p.add_argument("--host", default=None, help="default: SENTINEL_CONSOLE_HOST (127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="default: SENTINEL_CONSOLE_PORT (8090)")
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=serve)

    users = subparsers.add_parser("users", help="console users and API keys")
    actions = users.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="create a user (prints a generated password once)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=["viewer", "analyst", "admin"])
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    passwd = actions.add_parser("passwd", help="set a new password (generated unless --password-stdin)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true")
    key = actions.add_parser("key", help="create an API key for a user (printed once)")
    key.add_argument("name")
    actions.add_parser("list", help="users, roles and how many keys each has")
    ensure = actions.add_parser("ensure-admin", help="create `admin` when no admin exists")
    ensure.add_argument("--reset", action="store_true", help="give the admin a new password")
    ensure.add_argument("--json", action="store_true", help="print {url, user, password}")
    users.set_defaults(func=cmd_users)


def add_bench_commands(bench_subparsers: argparse._SubParsersAction) -> None:
    p = bench_subparsers.add_parser("console", help="console API p95 on 1 M decisions")
    p.add_argument("--out", type=Path, required=True, help="JSON report")
    p.add_argument("--decisions", type=int, default=1_000_000)
    p.add_argument("--days", type=int, default=30, help="spread the decisions over this many days")
    p.add_argument("--requests", type=int, default=200, help="requests per endpoint")
    p.add_argument("--keep", action="store_true",
                   help="keep the bench database afterwards (its name is in the report)")
    p.add_argument("--reuse-db", metavar="NAME",
                   help="measure a database an earlier --keep run prepared (migrated, rollups"
                        " refreshed; not dropped) instead of preparing a new one")  # fmt: skip
    p.set_defaults(func=bench)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from connectors.console.app import create_app

    settings = get_settings()
    uvicorn.run(
        create_app(settings),
        host=args.host or settings.console.host,
        port=args.port or settings.console.port,
        log_level=args.log_level,
        access_log=False,  # access logs would hold raw client IPs
    )
    return 0


def console_url() -> str:
    console = get_settings().console
    return f"http://{console.host}:{console.port}/"


def cmd_users(args: argparse.Namespace) -> int:
    from connectors.console.accounts import AccountError
    from connectors.console.passwords import WeakPassword

    try:
        return asyncio.run(_users(args))
    except (AccountError, WeakPassword) as exc:
        print(f"sentinel users {args.action}: {exc}", file=sys.stderr)
        return 1


async def _users(args: argparse.Namespace) -> int:
    import psycopg

    from connectors.console import accounts
    from connectors.console.audit import cli_actor

    actor = cli_actor()
    given = sys.stdin.readline().rstrip("\n") if getattr(args, "password_stdin", False) else None
    async with await psycopg.AsyncConnection.connect(
        get_settings().postgres.dsn, autocommit=True
    ) as conn:
        if args.action == "add":
            password = await accounts.add_user(conn, args.name, args.role, given, actor)
            _print_password(args.name, password, given)
        elif args.action == "passwd":
            password = await accounts.set_password(conn, args.name, given, actor)
            _print_password(args.name, password, given)
        elif args.action == "key":
            print(await accounts.create_key(conn, args.name, actor))
            print("(shown once: store it now; send it as `Authorization: Bearer <key>`)",
                  file=sys.stderr)  # fmt: skip
        elif args.action == "list":
            for name, role, created, disabled, keys in await accounts.list_users(conn):
                state = "disabled" if disabled else "active"
                print(f"{name:24} {role:8} {state:8} keys={keys} created {created:%Y-%m-%d}")
        else:
            user, password = await accounts.ensure_admin(conn, actor, args.reset)
            _print_admin(user, password, args.json)
    return 0


def admin_credentials() -> tuple[str, str | None]:
    """(admin user, a generated password) the first time; (user, None) once one exists
    (``sentinel demo`` prints them with the console's URL)."""
    import psycopg

    from connectors.console import accounts
    from connectors.console.audit import cli_actor

    async def ensure() -> tuple[str, str | None]:
        async with await psycopg.AsyncConnection.connect(
            get_settings().postgres.dsn, autocommit=True
        ) as conn:
            return await accounts.ensure_admin(conn, cli_actor())

    return asyncio.run(ensure())


def print_admin(user: str, password: str | None) -> None:
    _print_admin(user, password, as_json=False)


def _print_password(name: str, password: str, given: str | None) -> None:
    if given is None:
        print(f"user {name}: password {password}  (shown once)")
    else:
        print(f"user {name}: password set")


def _print_admin(user: str, password: str | None, as_json: bool) -> None:
    url = console_url()
    if as_json:
        print(json.dumps({"url": url, "user": user, "password": password}))
    elif password:
        print(f"console {url}  user {user}  password {password}  (shown once)")
    else:
        print(f"console {url}  user {user} exists; `sentinel users passwd {user}` sets a new password")


def bench(args: argparse.Namespace) -> int:
    from connectors.console.bench import run_console_bench

    report = run_console_bench(
        get_settings(), decisions=args.decisions, days=args.days, requests=args.requests,
        keep=args.keep, reuse=args.reuse_db,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(json.dumps({"api_p95_ms": report["api_p95_ms"], "first_paint_ms": report.get("first_paint_ms")}))
    return 0
