"""Figures ``sentinel bench pipeline`` adds beside its end-to-end run:

- ``decide_path_per_s``: the pure decision path on one core, no Kafka — a simulated week of
  purchases, logins and chain transfers through ``FeatureEngine`` and ``decide_batch`` in
  batches of 500, as replay and training run it; purchases per second of CPU time. The
  collector runs as in the worker (``streams.worker.GC_THRESHOLDS``) and the simulated input
  (a week held in memory, which no worker holds) is frozen out of it (``gc.freeze``), as
  ``sentinel bench rules`` does with its setup; the GeoIP data and user-agent patterns are
  loaded before timing (``netinfo.warm``), as the worker loads them at start;
- ``feature_agreement`` / ``verdict_agreement``: for a burst published at full speed and
  decided live, the share of purchases whose live features (resp. verdict) equal what replay
  computes for the same input. Compared values: every feature, exactly; the verdict.
"""

from __future__ import annotations

import gc
import time
from datetime import UTC, datetime

from models.registry import load_model
from models.replay import replay
from processors import netinfo
from processors.decide import Blocked, decide_batch
from processors.features import FeatureEngine, LateEventError
from processors.rules import load_ruleset
from streams.worker import GC_THRESHOLDS

BATCH = 500


def decide_path(days: int = 7, seed: int = 11, runs: int = 1) -> dict:
    """The figures above; ``runs`` times over the same events (each with a new
    ``FeatureEngine``), CPU time averaged: what an instruction count subtracts runs from
    (``python -m streams.bench_checks``)."""
    from models.simulator import SimConfig, simulate

    events = [e for e in simulate(SimConfig(seed=seed, days=days)) if e[0] != "label"]
    model, ruleset = load_model(), load_ruleset()
    netinfo.warm()  # start-up work, as the worker does it before its first batch
    gc.collect()
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        started = time.process_time()
        for _ in range(runs):
            purchases = _run(events, model, ruleset)
        cpu_s = (time.process_time() - started) / runs
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
    return {"decide_path_per_s": purchases / cpu_s, "decide_path_purchases": purchases,
            "decide_path_events": len(events), "decide_path_cpu_s": cpu_s,
            "decide_path_us_per_purchase": 1e6 * cpu_s / max(1, purchases)}


def _run(events: list, model, ruleset) -> int:
    engine, pending, purchases = FeatureEngine(), [], 0
    for kind, record in events:
        try:
            features = engine.process_row(kind, record)
        except LateEventError:
            continue
        if features is not None:
            pending.append((record, features))
            if len(pending) == BATCH:
                purchases += _decide(pending, model, ruleset)
                pending = []
    return purchases + _decide(pending, model, ruleset)


def _decide(pending: list, model, ruleset) -> int:
    if pending:
        decide_batch([p for p, _ in pending], [f for _, f in pending], model, ruleset,
                     Blocked(), datetime.now(UTC))
    return len(pending)


def agreement(purchases: list[dict], live: dict[str, dict]) -> dict:
    """Live decisions (purchase id → decision) against replay of the same purchases."""
    expected = {d["purchase_id"]: d
                for d in replay([("purchase", p) for p in purchases], load_model(), load_ruleset())}
    common = [pid for pid in expected if pid in live]
    same_features = sum(live[pid]["features"] == expected[pid]["features"] for pid in common)
    same_verdict = sum(live[pid]["decision"] == expected[pid]["decision"] for pid in common)
    differing: dict[str, int] = {}
    for pid in common:
        for name, value in expected[pid]["features"].items():
            if live[pid]["features"].get(name) != value:
                differing[name] = differing.get(name, 0) + 1
    n = max(1, len(common))
    return {"feature_agreement": same_features / n, "verdict_agreement": same_verdict / n,
            "agreement_purchases": len(common),
            "features_differing": dict(sorted(differing.items(), key=lambda kv: -kv[1])[:10])}


if __name__ == "__main__":
    # The decide path alone, e.g. under callgrind, whose instruction counts do not move with the
    # machine's load: the count of ``--runs 3`` minus that of ``--runs 1``, over 2 x purchases,
    # is the instructions a purchase (the simulation and start-up cancel out).
    import argparse
    import json

    parser = argparse.ArgumentParser(description="the pure decision path, no Kafka")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(decide_path(days=args.days, runs=args.runs)))
