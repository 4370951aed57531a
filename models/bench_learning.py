"""``sentinel bench learning``: does the learning loop catch a fraud pattern nobody trained on?

Six simulated weeks are published to Kafka (a topic prefix of their own); from the start of
week 4 a new pattern runs (``models/sim/novel.py``: ticket farms). The champion is trained
from the topics on weeks 1-3 with the labels known then (it never saw a farm); the candidate
is retrained from the topics on weeks 1-5 with the labels known at the end of week 5, and
goes through the promotion gate. Both are measured by replaying the topics through the
worker's own code (``models.replay``: features, packaged rules, policy) and the simulator's
ground truth:

- ``recall_new_pattern_before``: share of farm purchases in weeks 5-6 the champion did not
  approve; ``legit_friction_before``: share of legit purchases in weeks 5-6 it did not approve;
- ``recall_new_pattern_after`` / ``legit_friction_after``: the candidate on week 6.

Goal: after >= 0.8 and friction <= 3 %. Also reported: the champion on week 6 alone (the
same window as "after"), "flagged" recall (review or block only), the known patterns, and
where the friction comes from (the model alone, the rules alone).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from infra import admin
from infra.scratch import scratch_run
from infra.settings import KafkaSettings, Settings
from models.from_topics import TopicTrainConfig, load_sources, train_from_topics
from models.publish import publish_events
from models.registry import ModelRegistry
from models.replay import decide_rows, replay_rows
from models.sim.config import SimConfig
from models.sim.novel import PATTERN, simulate_with_novel
from processors.policy import DEFAULT_THRESHOLDS, combine, verdict_for
from processors.rules import load_ruleset

# (test, held-out) shares of the rows. The candidate's latest rows are where the new pattern's
# labels are: with the defaults (0.15, 0.2) they would all be held out and the retrained model
# would never see a farm, so its windows are small. The champion's keep the defaults (its
# newest weeks have few labels yet: small windows would hold no fraud at all).
SHARES = {"champion": (0.15, 0.2), "candidate": (0.05, 0.05)}
GOAL = {"recall_new_pattern_after": 0.8, "legit_friction_after": 0.03}
NOT_APPROVED = ("REQUIRE_2FA", "MANUAL_REVIEW", "BLOCKED")
FLAGGED = ("MANUAL_REVIEW", "BLOCKED")


def _share(decisions: list[dict], truth: dict[str, str], group: str, verdicts) -> float | None:
    """Share of ``group``'s purchases ("new", "known" fraud, "legit") with a verdict in
    ``verdicts``; None when the group is empty."""
    mine = [d for d in decisions if _group(truth.get(d["purchase_id"])) == group]
    return sum(d["decision"] in verdicts for d in mine) / len(mine) if mine else None


def _group(pattern: str | None) -> str | None:
    if pattern is None:
        return None
    return "legit" if pattern == "" else "new" if pattern == PATTERN else "known"


def _friction_sources(decisions: list[dict], truth: dict[str, str]) -> dict:
    """Where legit friction comes from: the model alone (its score above the 2FA threshold)
    and the rules alone (their evidence escalates with a model score of 0, or a hard rule)."""
    legit = [d for d in decisions if truth.get(d["purchase_id"]) == ""]
    if not legit:
        return {"legit_friction_model_alone": None, "legit_friction_rules_alone": None}
    model = sum(d["model_score"] > DEFAULT_THRESHOLDS.two_fa for d in legit)
    rules = sum(d["score"] >= 1.0 or verdict_for(combine(0.0, d["rule_score"])) != "APPROVED"
                for d in legit)
    return {"legit_friction_model_alone": model / len(legit),
            "legit_friction_rules_alone": rules / len(legit)}


def quality(decisions: list[dict], truth: dict[str, str]) -> dict:
    """truth: purchase id -> pattern ("" legit)."""
    return _friction_sources(decisions, truth) | {"purchases": len(decisions),
            "new_pattern": sum(truth.get(d["purchase_id"]) == PATTERN for d in decisions),
            "recall_new_pattern": _share(decisions, truth, "new", NOT_APPROVED),
            "recall_new_pattern_flagged": _share(decisions, truth, "new", FLAGGED),
            "recall_known_patterns": _share(decisions, truth, "known", NOT_APPROVED),
            "legit_friction": _share(decisions, truth, "legit", NOT_APPROVED)}


def _decisions(rows: list[tuple[dict, dict]], model, ruleset) -> list[dict]:
    out = []
    for k in range(0, len(rows), 500):
        out += decide_rows(rows[k:k + 500], model, ruleset)
    return out


def run(base: Settings, users: int = 15_000, seed: int = 31, rate: float = 0.008,
        rounds: int = 200, log=print) -> dict:
    started, timings = time.perf_counter(), {}
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    config = SimConfig(seed=seed, days=42, n_users=users, start=today - timedelta(days=43))
    day = lambda d: config.start + timedelta(days=d)  # noqa: E731
    events = list(simulate_with_novel(config, from_day=21, rate=rate))
    truth = {r["purchase_id"]: (r["pattern"] or "" if r["is_fraud"] else "")
             for k, r in events if k == "label"}
    with scratch_run(base, "bench-learning-") as token:
        prefix = f"{token}."
        settings = base.model_copy(update={"kafka": KafkaSettings(
            **{**base.kafka.model_dump(), "topic_prefix": prefix})})
        admin.create_topics(settings)
        known_now = [(k, r) for k, r in events if k != "label" or r["occurred_at"] <= day(42)]
        sent = publish_events(settings, known_now)
        timings["simulate_publish_s"] = time.perf_counter() - started
        sources = load_sources(settings)
        timings["read_topics_s"] = time.perf_counter() - started - timings["simulate_publish_s"]
        return _measure(settings, sources, truth, day, rounds, timings, started, log) | {
            "published": dict(sent), "topic_prefix": prefix,
            "params": {"users": users, "seed": seed, "new_pattern_rate": rate, "days": 42,
                       "new_pattern_from_day": 21, "rounds": rounds}}


def _measure(settings, sources, truth, day, rounds, timings, started, log) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        registry = ModelRegistry(Path(tmp) / "registry")
        train = lambda name, until, promote: train_from_topics(  # noqa: E731
            settings, Path(tmp) / name, TopicTrainConfig(
                since=day(3), until=day(until), labels_as_of=day(until), rounds=rounds,
                test_share=SHARES[name][0], holdout_share=SHARES[name][1], baselines=False),
            registry=registry, promote=promote, log=log, sources=sources)
        champion = train("champion", 21, True)
        candidate = train("candidate", 35, True)
        timings["train_s"] = time.perf_counter() - started - sum(timings.values())
        ruleset = load_ruleset()
        rows = list(replay_rows(sources[0], since=day(28), until=day(42)))
        week6 = [r for r in rows if r[0]["occurred_at"] >= day(35)]
        models = {v: registry.load(v) for v in (champion.version, candidate.version)}
        before = _decisions(rows, models[champion.version], ruleset)
        before_w6 = [d for d in before if d["occurred_at"] >= day(35)]
        after = _decisions(week6, models[candidate.version], ruleset)
        timings["replay_s"] = time.perf_counter() - started - sum(timings.values())
    q_before, q_after = quality(before, truth), quality(after, truth)
    report = {
        "benchmark": "learning",
        "recall_new_pattern_before": q_before["recall_new_pattern"],
        "recall_new_pattern_after": q_after["recall_new_pattern"],
        "legit_friction_before": q_before["legit_friction"],
        "legit_friction_after": q_after["legit_friction"],
        "before_weeks_5_6": q_before, "before_week_6": quality(before_w6, truth),
        "after_week_6": q_after,
        "champion": {"version": champion.version, "trained_until_day": 21,
                     "labels": champion.metrics["labels"]},
        "candidate": {"version": candidate.version, "trained_until_day": 35,
                      "labels": candidate.metrics["labels"],
                      "promotion": candidate.metrics["promotion"],
                      "against_champion": candidate.metrics["champion_comparison"]},
        "rules": ruleset.version, "timing": timings, "load_avg": os.getloadavg(),
        "cpu_count": os.cpu_count(),
    }
    report["goal"] = {**GOAL, "met": bool(
        (report["recall_new_pattern_after"] or 0) >= GOAL["recall_new_pattern_after"]
        and (report["legit_friction_after"] or 1) <= GOAL["legit_friction_after"])}
    return report


def cmd_bench_learning(args) -> int:
    from infra.settings import get_settings

    report = run(get_settings(), users=args.users, seed=args.seed, rate=args.rate,
                 rounds=args.rounds)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2, default=str) + "\n")
    keys = ("recall_new_pattern_before", "recall_new_pattern_after", "legit_friction_before",
            "legit_friction_after", "goal")
    print(json.dumps({k: report[k] for k in keys}, indent=2, default=str))
    return 0
