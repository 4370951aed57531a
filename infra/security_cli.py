"""``sentinel kafka setup|acls``, ``sentinel secrets`` and ``sentinel chaos``: the deployment's
Kafka principals and ACLs (``infra/kafka/acls.py``), a file of freshly generated passwords and
secrets so that no deployment runs on a default, and the chaos run (``infra/chaos.py``)."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from pathlib import Path

from infra.settings import get_settings

GENERATED = ("WEBHOOK_SECRETS", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "KAFKA_ADMIN_PASSWORD",
             "KAFKA_CONTROLLER_PASSWORD")  # fmt: skip


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("kafka", help="Kafka principals and ACLs (SASL deployments)")
    p.add_argument("action", choices=["setup", "acls"],
                   help="setup: SCRAM users and ACLs, as a super user; acls: list them")
    p.set_defaults(func=cmd_kafka)
    p = subparsers.add_parser("secrets", help="write freshly generated passwords and secrets")
    p.add_argument("--out", type=Path, default=Path(".env"), help="env file (never overwritten)")
    p.set_defaults(func=cmd_secrets)
    p = subparsers.add_parser("chaos", help="kills and outages under load; JSON of what was lost")
    p.add_argument("--out", type=Path, required=True, help="JSON report")
    p.add_argument("--short", action="store_true", help="the short form make test runs")
    p.add_argument("--duration", type=float, help="seconds of traffic (default 240)")
    p.add_argument("--kills", type=int, help="SIGKILLs (default 24)")
    p.add_argument("--outage-s", type=float, help="PostgreSQL and Redis down, each (default 30)")
    p.add_argument("--rate", type=float, help="records per second (default 25)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", type=Path, help="run in this data dir and keep it (logs)")
    p.set_defaults(func=cmd_chaos)


def cmd_chaos(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from infra.chaos import ChaosConfig, run

    config = ChaosConfig.short(args.seed) if args.short else ChaosConfig(seed=args.seed)
    chosen = {"duration_s": args.duration, "kills": args.kills, "outage_s": args.outage_s,
              "rate": args.rate}  # fmt: skip
    config = replace(config, **{k: v for k, v in chosen.items() if v is not None})
    report = run(config, args.keep)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    keys = ("accepted", "decided", "lost", "duplicated", "alerts", "alerts_duplicated", "kills")
    print(json.dumps({k: report[k] for k in keys} | {"targets_met": report["targets_met"]}))
    return 0 if report["targets_met"] else 1


def cmd_kafka(args: argparse.Namespace) -> int:
    from infra.kafka import acls

    settings = get_settings()
    if args.action == "acls":
        for g in acls.grants(settings.kafka.topic_prefix, settings.stream.app_id):
            kind = "prefix" if g.prefixed else "name"
            print(f"User:{g.principal:9} {g.operation:6} {g.resource} {kind} {g.name}")
        return 0
    try:
        done = acls.setup(settings, acls.passwords())
    except ValueError as exc:
        print(f"sentinel kafka setup: {exc}", file=sys.stderr)
        return 2
    print(f"kafka: {done['users']} SCRAM users, {done['acls']} ACLs")
    return 0


def generated_env() -> dict[str, str]:
    """A random value for every password and secret a deployment needs."""
    from infra.kafka.acls import PRINCIPALS

    names = [*GENERATED, *(f"KAFKA_PASSWORD_{p.upper()}" for p in PRINCIPALS)]
    return {name: secrets.token_hex(32) for name in names}


def cmd_secrets(args: argparse.Namespace) -> int:
    if args.out.exists():
        print(f"sentinel secrets: {args.out} exists; not overwriting it", file=sys.stderr)
        return 2
    body = "".join(f"{name}={value}\n" for name, value in generated_env().items())
    args.out.touch(mode=0o600)
    args.out.write_text(body)
    print(f"wrote {len(body.splitlines())} generated values to {args.out} (mode 0600)")
    return 0
