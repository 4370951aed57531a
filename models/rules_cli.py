"""``sentinel rules deploy FILE | history | rollback VERSION | enable RULE`` (routed from
streams/cli.py)."""

from __future__ import annotations

import argparse
import json
import sys


def _short(backtest: dict) -> str:
    if not backtest or backtest.get("skipped"):
        return "no backtest"
    if not backtest.get("decisions"):
        return backtest.get("note", "no purchases in the window")
    cand, prod = backtest["candidate"], backtest["production"]
    recall = "-" if cand["recall"] is None else f"{cand['recall']:.3f}"
    prod_recall = "-" if prod["recall"] is None else f"{prod['recall']:.3f}"
    return (f"{backtest['decisions']} purchases, {backtest['with_production'] - backtest['same_verdict']}"
            f" changed; recall {recall} (production {prod_recall}), false alarms "
            f"{cand['false_alarms']} (production {prod['false_alarms']})")


def run(args: argparse.Namespace) -> int:
    from infra.settings import get_settings
    from models.rules_deploy import (
        RulesStore,
        RulesVersionError,
        deploy,
        enable,
        rollback,
        rules_state,
    )
    from processors.rules import RulesFileError

    settings = get_settings()
    try:
        if args.action == "deploy":
            if not args.file:
                raise RulesVersionError("sentinel rules deploy needs a FILE")
            done = deploy(settings, args.file, args.window_days, not args.no_backtest)
            print(f"deployed rules {done['version']}: {_short(done['backtest'])}")
            print(json.dumps(done["backtest"], indent=2, default=str))
        elif args.action == "rollback":
            if not args.file:
                raise RulesVersionError("sentinel rules rollback needs a VERSION")
            print(f"rolled back to rules {rollback(settings, args.file)['version']}")
        elif args.action == "enable":
            if not args.file:
                raise RulesVersionError("sentinel rules enable needs a RULE")
            done = enable(settings, args.file)
            print(f"rule {done['rule']} enforced again"
                  + ("" if done["was_shadowed"] else " (it was not in shadow mode)"))
        else:
            state = rules_state(settings)
            print(f"active: {state['version']}")
            for rule_id, switch in state["shadowed"].items():
                print(f"SHADOW  {rule_id}: {switch['reason']} (since {switch['at']})")
            for row in RulesStore(settings.postgres.dsn).history():
                print(f"{row['deployed_at']:%Y-%m-%d %H:%M:%S%z}  {row['action']:8} "
                      f"{row['version']:24} {row['deployed_by'] or '-':10} {_short(row['backtest'])}")
    except (RulesFileError, RulesVersionError) as exc:
        print(f"sentinel rules {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0
