"""``sentinel bench detection``: the scenario suite through the production decision path.

Each suite entry is a simulation (a seed never used in training, and a variant of the world)
replayed through ``models.replay.replay`` — ``FeatureEngine`` + ``processors.decide.decide_batch``
with the champion and the rules file, as the worker decides — after a warm-up that only builds
state. Every purchase carries its scenario (a fraud pattern or a legit behaviour) and its
currency; the report gives verdict shares per scenario and per currency, and the headline
figures against the targets:

- ``fraud_not_approved``: fraud (friendly fraud apart: it looks legit by construction) not APPROVED;
- ``legit_friction``: legit purchases not APPROVED; ``legit_blocked``: legit BLOCKED;
- ``max_legit_review_share``: the worst legit scenario's share sent to MANUAL_REVIEW.
"""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import timedelta

from models.sim.config import SimConfig
from models.simulator import simulate

VERDICTS = ("APPROVED", "REQUIRE_2FA", "MANUAL_REVIEW", "BLOCKED")
FRIENDLY = "friendly_fraud"
TARGETS = {
    "fraud_not_approved": (">=", 0.95),
    "legit_friction": ("<=", 0.03),
    "legit_blocked": ("<=", 0.001),
    "max_legit_review_share": ("<=", 0.10),
}
MIN_SCENARIO_ROWS = 30  # a legit scenario needs this many purchases to count for the max


@dataclass(frozen=True)
class Case:
    name: str
    sim: SimConfig
    warmup_days: int = 2


DEFAULT_SEEDS = (101, 202, 303)
VARIANTS = (("base", {}), ("busy", {"n_shows": 90, "fraud_rate": 0.025}),
            ("quiet", {"n_shows": 220, "fraud_rate": 0.01}))


def default_suite(days: int = 14, users: int = 20_000,
                  seeds: tuple[int, ...] = DEFAULT_SEEDS) -> list[Case]:
    """One case per seed, each a different variant of the world in turn (base, busy, quiet):
    the default seeds are the published figures; others check they were not tuned to them."""
    base = SimConfig(days=days, n_users=users)
    return [Case(f"{VARIANTS[i % 3][0]}-{seed}", replace(base, seed=seed, **VARIANTS[i % 3][1]))
            for i, seed in enumerate(seeds)]


def run_case(case: Case, model, ruleset) -> list[dict]:
    """Rows (scenario, currency, organizer, is_fraud, verdict) for the case's decided purchases."""
    from models.replay import replay

    if case.sim.seed in training_seeds():
        raise ValueError(f"seed {case.sim.seed} is a training seed: benchmark on others")
    scenarios: dict[str, str] = {}
    events = list(simulate(case.sim, scenarios))
    labels = {r["purchase_id"]: r["is_fraud"] for k, r in events if k == "label"}
    purchases = {r["purchase_id"]: r for k, r in events if k == "purchase"}
    since = case.sim.start + timedelta(days=case.warmup_days)
    # labels in event time, as the worker follows them: confirmed fraud marks later purchases
    decisions = replay(events, model, ruleset, since=since)
    rows = []
    for d in decisions:
        p = purchases[d["purchase_id"]]
        rows.append({
            "case": case.name,
            "scenario": scenarios.get(d["purchase_id"], "legit"),
            "currency": p["currency"],
            "organizer": p["organizer_id"],
            "is_fraud": labels.get(d["purchase_id"], False),
            "verdict": d["decision"],
        })
    return rows


def training_seeds() -> frozenset[int]:
    """Seeds ``sentinel train`` uses by default (main, variants, holdout): never benchmarked."""
    from models.training import TrainConfig

    config = TrainConfig()
    seeds = {config.sim.seed, config.holdout_sim().seed, *(v.seed for v in config.variants)}
    return frozenset(seeds)


def shares(rows: list[dict]) -> dict:
    counts = Counter(r["verdict"] for r in rows)
    n = len(rows) or 1
    return {"n": len(rows), **{v: counts[v] / n for v in VERDICTS}}


def summarize(rows: list[dict]) -> dict:
    """Headline figures, per scenario, per currency and per case."""
    fraud = [r for r in rows if r["is_fraud"] and r["scenario"] != FRIENDLY]
    legit = [r for r in rows if not r["is_fraud"]]
    by_scenario = _group(rows, "scenario")
    legit_scenarios = {
        k: shares(v) for k, v in by_scenario.items() if not v[0]["is_fraud"]
    }
    worst = max(
        (s for s in legit_scenarios.values() if s["n"] >= MIN_SCENARIO_ROWS),
        key=lambda s: s["MANUAL_REVIEW"],
        default={"MANUAL_REVIEW": 0.0},
    )
    headline = {
        "fraud_not_approved": 1 - shares(fraud)["APPROVED"] if fraud else None,
        "legit_friction": 1 - shares(legit)["APPROVED"] if legit else None,
        "legit_blocked": shares(legit)["BLOCKED"] if legit else None,
        "max_legit_review_share": worst["MANUAL_REVIEW"],
    }
    return {
        **headline,
        "targets": {k: _target(k, headline[k]) for k in TARGETS},
        "friendly_fraud": shares(by_scenario.get(FRIENDLY, [])),
        "purchases": len(rows),
        "fraud": len(fraud),
        "legit": len(legit),
        "scenarios": {k: shares(v) for k, v in sorted(by_scenario.items())},
        "currencies": {k: _quality(v) for k, v in sorted(_group(rows, "currency").items())},
        "cases": {k: _quality(v) for k, v in sorted(_group(rows, "case").items())},
    }


def _quality(rows: list[dict]) -> dict:
    fraud = [r for r in rows if r["is_fraud"] and r["scenario"] != FRIENDLY]
    legit = [r for r in rows if not r["is_fraud"]]
    return {
        "purchases": len(rows),
        "fraud_not_approved": 1 - shares(fraud)["APPROVED"] if fraud else None,
        "legit_friction": 1 - shares(legit)["APPROVED"] if legit else None,
        "legit_blocked": shares(legit)["BLOCKED"] if legit else None,
        "legit_review": shares(legit)["MANUAL_REVIEW"] if legit else None,
    }


def _group(rows: Iterable[dict], key: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        out[r[key]].append(r)
    return out


def _target(name: str, value: float | None) -> dict:
    op, bound = TARGETS[name]
    met = value is not None and (value >= bound if op == ">=" else value <= bound)
    return {"target": f"{op} {bound}", "value": value, "met": met}


def bench(cases: list[Case], model, ruleset) -> dict:
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    rows: list[dict] = []
    for case in cases:
        rows += run_case(case, model, ruleset)
    seconds = time.perf_counter() - started
    return {
        "benchmark": "detection",
        **summarize(rows),
        "model_version": model.version,
        "rules_version": ruleset.version,
        "suite": [
            {"name": c.name, "seed": c.sim.seed, "days": c.sim.days, "users": c.sim.n_users,
             "shows": c.sim.n_shows, "fraud_rate": c.sim.fraud_rate, "warmup_days": c.warmup_days}
            for c in cases
        ],
        "seconds": seconds,
        "purchases_per_second": len(rows) / seconds if seconds else None,
        "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
        "cpus": os.cpu_count(),
    }
