"""``sentinel demo|tail|lag``: run the pipeline on simulated traffic, follow the decisions,
watch consumer lag."""

from __future__ import annotations

import argparse
import json
import sys

from infra.settings import get_settings

RULES_OPS = ("deploy", "history", "rollback", "enable")  # models/rules_cli.py


def cmd_demo(args: argparse.Namespace) -> int:
    from streams.demo import run_demo

    return run_demo(get_settings(), purchases=args.purchases, timeout=args.timeout)


def cmd_tail(args: argparse.Namespace) -> int:
    from streams.ops import format_decision, tail_decisions

    for decision in tail_decisions(get_settings(), args.from_beginning, args.idle):
        print(json.dumps(decision, default=str) if args.json else format_decision(decision))
    return 0


def cmd_lag(args: argparse.Namespace) -> int:
    from streams.ops import group_lag

    settings = get_settings()
    rows = group_lag(settings, args.group or settings.stream.app_id)
    for row in rows:
        age = "?" if row["seconds"] is None else f"{row['seconds']:.1f}s"
        print(f"{row['topic']:<45} {row['partition']:>3} committed={row['committed']:<9} "
              f"end={row['end']:<9} lag={row['lag']:<7} oldest waiting {age}")
    print(f"total lag: {sum(r['lag'] for r in rows)}")
    return 0


def cmd_rules(args: argparse.Namespace) -> int:
    """List the rules of a rules file, or check one: every expression is compiled, and a bad
    one is refused naming the rule, line, column and token (exit 1)."""
    from processors.rules import DEFAULT_RULES_PATH, RulesFileError, load_ruleset

    if args.action in RULES_OPS:
        from models.rules_cli import run

        return run(args)
    path = args.file or DEFAULT_RULES_PATH
    try:
        ruleset = load_ruleset(path)
    except RulesFileError as exc:
        print(f"invalid rules file: {exc}", file=sys.stderr)
        return 1
    if args.action == "check":
        print(f"{path}: valid, version {ruleset.version}, {len(ruleset.rules)} rules compiled, "
              f"{len(ruleset.active)} active rules, "
              f"organizers: {', '.join(ruleset.organizers) or 'none'}")
        return 0
    view = ruleset.for_organizer(args.organizer)
    for rule_id, setting in view.settings.items():
        rule = view.rules[rule_id]
        state = "on " if setting.enabled else "off"
        hard = " HARD" if rule.hard else ""
        params = ", ".join(f"{k}={v}" for k, v in setting.params.items())
        print(f"{state} {rule.category:<16} {rule_id:<36} w={setting.weight:<5}{hard} {params}")
        if args.expressions:
            print(f"    when:   {rule.when}\n    score:  {rule.score}\n    reason: {rule.reason}")
    t = view.thresholds
    model_2fa = f", model alone > {t.two_fa_model} -> 2FA" if t.two_fa_model < 1.0 else ""
    print(f"policy: 2FA > {t.two_fa}, review > {t.review}, block > {t.block}{model_2fa}; "
          f"rules version {ruleset.version}")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("rules", help="rules files: list, check, deploy, history, rollback")
    p.add_argument("action", choices=["list", "check", *RULES_OPS])
    p.add_argument("file", nargs="?", help="default: processors/rules/rules.toml; "
                   "rollback: the VERSION; enable: the RULE")
    p.add_argument("--organizer", help="list: the view with this organizer's overrides")
    p.add_argument("--window-days", type=float, default=7.0,
                   help="deploy: backtest over this many days before the latest purchase")
    p.add_argument("--no-backtest", action="store_true", help="deploy: skip the backtest")
    p.add_argument("--expressions", action="store_true", help="list: each rule's expressions")
    p.set_defaults(func=cmd_rules)

    p = sub.add_parser("demo", help="worker + simulated burst; print the decisions")
    p.add_argument("--purchases", type=int, default=300)
    p.add_argument("--timeout", type=float, default=120.0)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("tail", help="follow sentinel.decisions.v1")
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--idle", type=float, default=None, help="stop after this many idle seconds")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tail)

    p = sub.add_parser("lag", help="consumer-group lag per partition")
    p.add_argument("--group", default=None, help="default: the worker's app id")
    p.set_defaults(func=cmd_lag)


def add_bench_commands(bench_sub) -> None:
    from streams.bench import add_bench_commands as add

    add(bench_sub)
