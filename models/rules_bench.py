"""``sentinel bench rules --out FILE.json``: the cost of the rules per purchase, the expression
engine (``evaluate_batch`` over batches) against the per-row Python functions it replaced
(``tests/support/legacy_rules``, the ceiling measured in the same run), on the same simulated
purchases and features, with the same rules file and blocklists.

CPU time of this process is reported next to wall time (the machine is shared: wall time
moves with the load, which the report records). Setup objects are frozen out of the garbage
collector (``gc.freeze``) so that both engines are timed on their own allocations.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from processors.features import FEATURE_NAMES, FeatureEngine, LateEventError
from processors.rules import RuleBatch, RuleSet, evaluate_batch, load_ruleset

TARGET_US_PER_PURCHASE = 10.0


def purchases_with_features(events: Iterable[tuple[str, dict]]) -> list[tuple[dict, dict]]:
    """(purchase, features) for each purchase of ``events``, through ``FeatureEngine`` in
    order (late events skipped, as the worker dead-letters them)."""
    engine, out = FeatureEngine(), []
    for kind, record in events:
        if kind == "label":
            continue
        try:
            features = engine.process(kind, record)
        except LateEventError:
            continue
        if features is not None:
            out.append((record, features))
    return out


def sample_blocklists(purchases: Sequence[dict]) -> tuple[set[str], set[str]]:
    """Some wallets, sellers and IPs of ``purchases`` to block, so the hard rules fire too."""
    wallets = {p["wallet"] for p in purchases[::97]}
    wallets |= {p["seller_wallet"] for p in purchases[::13] if p.get("seller_wallet")}
    return wallets, {p["ip"] for p in purchases[::89]}


def legacy_engine() -> Any:
    """The reference engine from the checkout's ``tests/support`` (not installed with the
    package: this benchmark runs from a checkout)."""
    root = Path(__file__).resolve().parents[1]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from tests.support import legacy_rules

    legacy_rules.load_catalogue()
    return legacy_rules


def time_new(rows, X, blocked, ruleset: RuleSet, batch_size: int) -> tuple[float, float, list]:
    """(wall s, CPU s, per-row evaluations) of batches: RuleBatch construction included."""
    purchases = [p for p, _ in rows]
    wall, cpu, out = time.perf_counter(), time.process_time(), []
    for start in range(0, len(rows), batch_size):
        end = start + batch_size
        out.append(evaluate_batch(RuleBatch(purchases[start:end], X[start:end], *blocked), ruleset))
    return time.perf_counter() - wall, time.process_time() - cpu, out


def time_old(rows, blocked, ruleset: RuleSet, legacy: Any) -> tuple[float, float, list]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = [legacy.evaluate(legacy.RuleContext(p, f, *blocked),
                           ruleset.for_organizer(p.get("organizer_id"))) for p, f in rows]  # fmt: skip
    return time.perf_counter() - wall, time.process_time() - cpu, out


def mismatches(old: list, new_batches: list) -> int:
    new = [ev.row(i) for ev in new_batches for i in range(len(ev))]
    return sum(
        (o.results, o.rule_score, o.hard_block) != (n.results, n.rule_score, n.hard_block)
        for o, n in zip(old, new, strict=True)
    )


def run(rows: list[tuple[dict, dict]], ruleset: RuleSet, batch_size: int, repeat: int) -> dict:
    legacy = legacy_engine()
    X = np.asarray([[f[name] for name in FEATURE_NAMES] for _, f in rows], dtype=np.float64)
    blocked = sample_blocklists([p for p, _ in rows])
    gc.collect()
    gc.freeze()
    new_runs = [time_new(rows, X, blocked, ruleset, batch_size) for _ in range(repeat)]
    old_runs = [time_old(rows, blocked, ruleset, legacy) for _ in range(max(1, repeat // 2))]
    n = len(rows)

    def per_purchase(runs: list) -> dict:
        return {"cpu_us": round(min(r[1] for r in runs) / n * 1e6, 2),
                "wall_us": round(min(r[0] for r in runs) / n * 1e6, 2),
                "wall_us_median": round(float(np.median([r[0] for r in runs])) / n * 1e6, 2)}  # fmt: skip

    new, old = per_purchase(new_runs), per_purchase(old_runs)
    return {
        "benchmark": "rules",
        "purchases": n,
        "batch_size": batch_size,
        "rules_active": len(ruleset.active),
        "new_engine_us_per_purchase": new,
        "old_engine_us_per_purchase": old,
        "ratio_new_to_old_cpu": round(new["cpu_us"] / old["cpu_us"], 4),
        "target_us_per_purchase": TARGET_US_PER_PURCHASE,
        "met": new["cpu_us"] <= TARGET_US_PER_PURCHASE,
        "mismatched_rows": mismatches(old_runs[0][2], new_runs[0][2]),
    }


def bench_rules(args) -> int:
    from models.simulator import SimConfig, simulate

    config = SimConfig(seed=args.seed, days=args.days, n_users=args.users)
    rows = purchases_with_features(simulate(config))
    ruleset = load_ruleset(args.rules) if args.rules else load_ruleset()
    report = run(rows, ruleset, args.batch, args.repeat)
    report.update({
        "simulation": {"seed": args.seed, "days": args.days, "users": args.users},
        "rules_version": ruleset.version,
    })  # fmt: skip
    return save_report(report, args.out)


def save_report(report: dict, out: str) -> int:
    """A benchmark's report with the machine, the command and the time, to ``out`` (JSON) and
    to the terminal; the command's exit status."""
    report.update({
        "machine": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)},
        "command": " ".join(sys.argv),
        "created_at": datetime.now(UTC).isoformat(),
    })  # fmt: skip
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


def add_bench_command(bench_subparsers) -> None:
    p = bench_subparsers.add_parser("rules", help="rules µs per purchase: expressions vs legacy")
    p.add_argument("--out", required=True, help="JSON report path")
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--users", type=int, default=4_000)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--batch", type=int, default=500, help="purchases per evaluate_batch call")
    p.add_argument("--repeat", type=int, default=5, help="timed runs (the fastest is reported)")
    p.add_argument("--rules", help="rules file (default: processors/rules/rules.toml)")
    p.set_defaults(func=bench_rules)
