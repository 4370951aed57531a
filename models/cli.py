"""``sentinel simulate | train | models``: registered by ``infra/cli.py`` via ``add_commands``.

sentinel simulate --days 14 --out sim.jsonl     simulated traffic as JSONL (or --summary)
sentinel train --out .data/train --promote      train, write metrics.json + report.html
sentinel train --from-topics --since T --until T --out DIR    train on the topics' labelled traffic
sentinel models list | show VERSION | promote VERSION [--challenger] | clear-challenger
sentinel models compare [CHALLENGER] [--since T] [--until T]   shadow evidence from PostgreSQL
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from models.sim.config import SimConfig


def cmd_replay(args: argparse.Namespace) -> int:
    """Re-score a time range of the topics with a candidate model and rules file."""
    from datetime import datetime

    import orjson

    from infra import topics
    from infra.settings import get_settings
    from models.registry import load_model
    from models.replay import compare, read_topic, read_topics, replay
    from processors.features import FEATURE_NAMES, FeatureConfig
    from processors.rules import load_ruleset

    settings = get_settings()
    model = load_model(args.model)
    if list(model.feature_names) != list(FEATURE_NAMES):
        raise SystemExit(f"model {model.version} was trained on other features")
    ruleset = load_ruleset(args.rules) if args.rules else load_ruleset()
    since = datetime.fromisoformat(args.since) if args.since else None
    until = datetime.fromisoformat(args.until) if args.until else None
    config = FeatureConfig(**settings.stream.feature_knobs())
    decisions = replay(read_topics(settings), model, ruleset, since=since, until=until,
                       config=config)
    if args.out:
        with open(args.out, "wb") as f:
            for d in decisions:
                f.write(orjson.dumps(d) + b"\n")
    report = compare(decisions, read_topic(settings, topics.DECISIONS),
                     read_topic(settings, topics.LABELS))
    report.update({"model": model.version, "rules": ruleset.version})
    print(json.dumps(report, indent=2, default=str))
    return 0


def _sim_args(p: argparse.ArgumentParser, days: int, users: int) -> None:
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--days", type=int, default=days)
    p.add_argument("--users", type=int, default=users, help="legit users in the world")
    p.add_argument(
        "--fraud-rate", type=float, default=0.015, help="share of purchases that are fraud"
    )


def _sim_config(args: argparse.Namespace) -> SimConfig:
    return SimConfig(seed=args.seed, days=args.days, n_users=args.users, fraud_rate=args.fraud_rate)


def cmd_simulate(args: argparse.Namespace) -> int:
    from models.simulator import simulate, summarize, write_jsonl

    config = _sim_config(args)
    if args.out:
        n = write_jsonl(args.out, simulate(config))
        print(f"wrote {n} records to {args.out}")
    print(json.dumps(summarize(simulate(config)), indent=2))
    return 0


def _when(value: str | None):
    """An ISO-8601 time; a naive one is taken as UTC."""
    from datetime import UTC, datetime

    if not value:
        return None
    at = datetime.fromisoformat(value)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def cmd_train_from_topics(args: argparse.Namespace) -> int:
    from infra.settings import get_settings
    from models.from_topics import TopicTrainConfig, train_from_topics
    from models.registry import ModelRegistry

    config = TopicTrainConfig(
        since=_when(args.since), until=_when(args.until), labels_as_of=_when(args.labels_as_of),
        label_delay_days=args.label_delay_days, holdout_share=args.holdout_share,
        test_share=args.test_share, rounds=args.rounds, baselines=not args.no_baselines,
        seed=args.seed)
    result = train_from_topics(get_settings(), args.out, config,
                               registry=ModelRegistry(args.registry), promote=args.promote,
                               force=args.force)
    return _report_training(args, result)


def _report_training(args: argparse.Namespace, result) -> int:
    print(f"report: {Path(args.out) / 'report.html'}")
    comparison = result.metrics["champion_comparison"]
    if comparison["comparable"]:
        verdict = "WORSE: " + "; ".join(comparison["reasons"]) if comparison["worse"] else "not worse"
        print(f"against champion {comparison['champion']} on the held-out window: {verdict}")
    else:
        print(f"not compared with the champion: {comparison['note']}")
    promotion = result.metrics["promotion"]
    if result.version:
        role = " (champion)" if promotion.get("promoted") else ""
        print(f"registered {result.version}{role}")
    return 1 if promotion["requested"] and not promotion["promoted"] else 0


def cmd_train(args: argparse.Namespace) -> int:
    from models.registry import ModelRegistry
    from models.training import TrainConfig, train

    if args.from_topics:
        return cmd_train_from_topics(args)

    config = TrainConfig(
        sim=_sim_config(args),
        warmup_days=args.warmup_days,
        holdout_seed=args.holdout_seed,
        holdout_days=args.holdout_days,
        rounds=args.rounds,
        baselines=not args.no_baselines,
    )
    result = train(
        args.out,
        config,
        registry=ModelRegistry(args.registry),
        register=not args.no_register,
        promote=args.promote,
        force=args.force,
    )
    return _report_training(args, result)


def cmd_compare(args: argparse.Namespace) -> int:
    """Champion vs challenger on the labelled decisions in PostgreSQL."""
    from infra.settings import get_settings
    from models.shadow import compare_shadow

    report = compare_shadow(get_settings().postgres.dsn, _when(args.since), _when(args.until),
                            args.version, args.label_delay_days)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    print(f"{report['decisions']} shadowed decisions, {report['labelled']} labelled "
          f"({report['fraud']} fraud, {report['legit']} legit); champions "
          f"{report['champion_versions']}, challengers {report['challenger_versions']}")
    if report["champion"] is None:
        print("no labelled purchase among them yet")
        return 0
    print(f"{'':12} {'AUC-ROC':>8} {'recall 2FA+':>12} {'review+':>8} {'blocked':>8} "
          f"{'legit friction':>15}")
    for side in ("champion", "challenger"):
        r = report[side]
        auc = "-" if r["auc_roc"] is None else f"{r['auc_roc']:.4f}"
        rec = ["-" if v is None else f"{v:.3f}" for v in r["recall_at_policy"].values()]
        fr = "-" if r["legit_friction"] is None else f"{r['legit_friction']:.2%}"
        print(f"{side:12} {auc:>8} {rec[0]:>12} {rec[1]:>8} {rec[2]:>8} {fr:>15}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from models.registry import ModelRegistry

    if args.action == "compare":
        return cmd_compare(args)
    registry = ModelRegistry(args.registry)
    if args.action == "list":
        rows = registry.list_models()
        for r in rows:
            auc = "-" if r["auc_roc"] is None else f"{r['auc_roc']:.4f}"
            rec = "-" if r["recall_at_fpr_2pct"] is None else f"{r['recall_at_fpr_2pct']:.3f}"
            print(
                f"{r['version']:32} {r['role']:10} auc={auc} recall@2%fpr={rec} {r['created_at']}"
            )
        if not rows:
            print(f"no models in {registry.root}")
        return 0
    if args.action == "clear-challenger":
        print(json.dumps(registry.clear_challenger(), indent=2))
        return 0
    if not args.version:
        print(f"sentinel models {args.action}: VERSION is required", file=sys.stderr)
        return 2
    if args.action == "show":
        print(json.dumps(registry.show(args.version), indent=2, default=str))
    elif args.challenger:
        print(json.dumps(registry.promote(args.version, "challenger"), indent=2))
    else:
        return _promote_champion(registry, args.version, args.force)
    return 0


def _promote_champion(registry, version: str, force: bool) -> int:
    """The promotion gate: refuse a candidate worse than the champion on its held-out window."""
    from models.champion import promotion_check

    check = promotion_check(registry, version)
    if not check.allowed and not force:
        print(f"sentinel models promote: {check.message}", file=sys.stderr)
        return 1
    print(check.message if check.allowed else f"forced: {check.message}")
    print(json.dumps(registry.promote(version), indent=2))
    return 0


def _run(handler):
    """Registry errors become a one-line message and exit status 1."""

    def run(args: argparse.Namespace) -> int:
        from models.registry import ModelLoadError, UnknownModelError  # loads XGBoost: when run

        try:
            return handler(args)
        except (ModelLoadError, UnknownModelError, ValueError) as exc:
            print(f"sentinel {args.command}: {exc}", file=sys.stderr)
            return 1

    return run


def cmd_rates(args: argparse.Namespace) -> int:
    """Show the committed rates table, or replace it from an operator's CSV."""
    from processors.money import RATES_PATH, RatesTable, load_rates, read_rates_csv, write_rates

    path = Path(args.table) if args.table else RATES_PATH
    current = load_rates(path)
    if args.action == "show":
        print(json.dumps({"path": str(path), "version": current.version,
                          "reference": current.reference, "source": current.source,
                          "as_of": current.as_of, "rates": current.rates}, indent=2, default=str))
        return 0
    if not args.file or not args.source or not args.as_of:
        raise SystemExit("sentinel rates update FILE --source TEXT --as-of YYYY-MM-DD")
    rates = read_rates_csv(args.file, current.reference)
    version = args.version or f"{args.as_of}.1"
    table = RatesTable(version, current.reference, args.source, args.as_of, rates)
    write_rates(path, table)
    table = load_rates(path)  # read back: what scoring will load
    missing = sorted(set(current.rates) - set(table.rates) - {current.reference})
    print(json.dumps({"path": str(path), "version": version, "currencies": len(table.rates),
                      "dropped": missing}, indent=2))
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    """Per-organizer thresholds within a friction budget on a labelled window."""
    from datetime import datetime

    from models.registry import load_model
    from models.replay import replay
    from models.tune import POOLED, Budget, tune, write_pooled, write_tuned
    from processors.rules import DEFAULT_RULES_PATH, load_ruleset

    since, until = datetime.fromisoformat(args.since), datetime.fromisoformat(args.until)
    rules_path = Path(args.rules) if args.rules else DEFAULT_RULES_PATH
    ruleset, model = load_ruleset(rules_path), load_model(args.model)
    decisions, labels = [], {}
    for events, window_labels in _labelled_windows(args):  # each world replayed on its own
        decisions += replay(events, model, ruleset, since=since, until=until)
        labels |= window_labels
    budget = Budget(args.max_not_approved, args.max_blocked, args.max_review, args.min_legit)
    keep = [k.strip() for k in args.keep.split(",") if k.strip()] if args.keep else []
    tuned = tune(decisions, labels, ruleset, budget, pooled=args.pooled, keep=keep)
    report = {"window": [args.since, args.until], "decisions": len(decisions),
              "model": model.version, "rules_before": ruleset.version, "organizers": tuned}
    if not args.dry_run:
        worlds = f" of {', '.join(Path(e).name for e in args.events)}" if args.events else ""
        window = f"{args.since}..{args.until}{worlds}"
        report["written"] = (write_pooled(rules_path, tuned[POOLED], window, budget)
                             if args.pooled else write_tuned(rules_path, tuned, window, budget))
        report["rules_after"] = load_ruleset(rules_path).version
    text = json.dumps(report, indent=2, default=str)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


def _labelled_windows(args: argparse.Namespace):
    """(events, labels by purchase id) of each simulator JSONL file, or of the topics; the
    events hold the labels too, at their own time, as the worker gets them (fraud marks)."""
    if args.events:
        from models.simulator import read_jsonl

        for path in args.events:
            items = list(read_jsonl(path))
            labels = {r["purchase_id"]: r for k, r in items if k == "label"}
            yield items, labels
        return
    from infra import topics
    from infra.settings import get_settings
    from models.replay import read_topic, read_topics

    settings = get_settings()
    labels = {r["purchase_id"]: r for r in read_topic(settings, topics.LABELS)}
    yield read_topics(settings), labels


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("tune", help="policy thresholds within a friction budget")
    p.add_argument("--since", required=True, help="window start (ISO 8601, with zone)")
    p.add_argument("--until", required=True, help="window end (ISO 8601, with zone)")
    p.add_argument("--events", action="append", help="simulator JSONL with labels (default: "
                   "the topics); repeat it for several worlds, each replayed on its own")
    p.add_argument("--rules", help="rules file to tune and rewrite (default: the packaged one)")
    p.add_argument("--model", help="model version (default: the champion)")
    p.add_argument("--max-not-approved", type=float, default=0.03)
    p.add_argument("--max-review", type=float, default=0.01)
    p.add_argument("--max-blocked", type=float, default=0.001)
    p.add_argument("--min-legit", type=int, default=300)
    p.add_argument("--pooled", action="store_true",
                   help="one set of thresholds for all organizers, written to [policy]")
    p.add_argument("--keep", default="",
                   help="thresholds left as the file has them, comma-separated "
                        "(two_fa, review, block, two_fa_model)")
    p.add_argument("--dry-run", action="store_true", help="report only, leave the file")
    p.add_argument("--out", help="also write the report (JSON) here")
    p.set_defaults(func=_run(cmd_tune))

    p = subparsers.add_parser("rates", help="exchange rates to the reference currency")
    p.add_argument("action", choices=["show", "update"])
    p.add_argument("file", nargs="?", help="update: CSV with columns currency,rate")
    p.add_argument("--source", help="update: where the rates come from (kept in the file)")
    p.add_argument("--as-of", dest="as_of", help="update: the rates' date, YYYY-MM-DD")
    p.add_argument("--version", help="update: table version (default: <as-of>.1)")
    p.add_argument("--table", help="rates table to read or write (default: the packaged one)")
    p.set_defaults(func=_run(cmd_rates))

    p = subparsers.add_parser("replay", help="backtest: re-score topics with a candidate model")
    p.add_argument("--since", help="ISO-8601 event time; earlier events only build state")
    p.add_argument("--until", help="ISO-8601 event time (exclusive)")
    p.add_argument("--model", help="model version (default: the champion)")
    p.add_argument("--rules", help="rules file (default: processors/rules/rules.toml)")
    p.add_argument("--out", help="write the candidate decisions as JSONL")
    p.set_defaults(func=_run(cmd_replay))

    p = subparsers.add_parser("simulate", help="simulated ticketing traffic (JSONL)")
    _sim_args(p, days=14, users=20_000)
    p.add_argument("--out", help="JSONL file to write (omit for a summary only)")
    p.set_defaults(func=_run(cmd_simulate))

    p = subparsers.add_parser("train", help="train the fraud model and write its report")
    _sim_args(p, days=28, users=40_000)
    p.add_argument(
        "--out", default=".data/train", help="directory for metrics.json and report.html"
    )
    p.add_argument(
        "--warmup-days", type=int, default=7, help="days that only warm feature state up"
    )
    p.add_argument("--holdout-seed", type=int, default=None, help="default: seed + 1000")
    p.add_argument("--holdout-days", type=int, default=7)
    p.add_argument("--rounds", type=int, default=300, help="boosting rounds")
    p.add_argument("--no-baselines", action="store_true", help="skip LR / RF / isolation forest")
    p.add_argument(
        "--no-register", action="store_true", help="do not add the model to the registry"
    )
    p.add_argument("--promote", action="store_true",
                   help="make the new model the champion unless it is worse than the current one")
    p.add_argument("--force", action="store_true",
                   help="with --promote: promote even when worse than the champion")
    p.add_argument("--from-topics", action="store_true",
                   help="train on the platform's topics and labels instead of a simulation")
    p.add_argument("--since", help="--from-topics: ISO-8601 event time of the first row "
                   "(earlier events only warm the feature state up)")
    p.add_argument("--until", help="--from-topics: ISO-8601 event time, exclusive")
    p.add_argument("--labels-as-of", help="--from-topics: labels known at this event time "
                   "(default: the latest event or label on the topics)")
    p.add_argument("--label-delay-days", type=float, default=30.0,
                   help="--from-topics: an unlabelled purchase is legit once this old")
    p.add_argument("--holdout-share", type=float, default=0.2,
                   help="--from-topics: the latest share of the window, held out")
    p.add_argument("--test-share", type=float, default=0.15,
                   help="--from-topics: the share before the held-out window, for testing")
    p.add_argument(
        "--registry",
        default=None,
        help="registry dir (default $SENTINEL_MODEL_DIR or models/registry)",
    )
    p.set_defaults(func=_run(cmd_train))

    p = subparsers.add_parser("models", help="the model registry: list, show, promote, compare")
    p.add_argument("action", choices=["list", "show", "promote", "clear-challenger", "compare"])
    p.add_argument("version", nargs="?", help="compare: the challenger (default: all)")
    p.add_argument("--since", help="compare: ISO-8601 event time")
    p.add_argument("--until", help="compare: ISO-8601 event time, exclusive")
    p.add_argument("--label-delay-days", type=float, default=30.0,
                   help="compare: an unlabelled purchase is legit once this old")
    p.add_argument("--json", action="store_true", help="compare: the full report as JSON")
    p.add_argument("--challenger", action="store_true", help="promote as challenger (shadow)")
    p.add_argument("--force", action="store_true",
                   help="promote even when worse than the champion on its held-out window")
    p.add_argument(
        "--registry",
        default=None,
        help="registry dir (default $SENTINEL_MODEL_DIR or models/registry)",
    )
    p.set_defaults(func=_run(cmd_models))


def cmd_bench_train(args: argparse.Namespace) -> int:
    """Time simulation + features + training on about a million events; JSON report."""
    import tempfile
    import time

    from models.registry import ModelRegistry
    from models.simulator import simulate
    from models.training import TARGETS, TrainConfig, train

    config = TrainConfig(sim=_sim_config(args))
    started = time.perf_counter()
    n_sim = sum(1 for _ in simulate(config.sim))
    sim_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = train(Path(tmp) / "run", config, registry=ModelRegistry(Path(tmp) / "registry"))
        seconds = time.perf_counter() - started
    timing = result.metrics["timing"]
    events = timing["train_events"] + timing["holdout_events"]
    report = {
        "benchmark": "train",
        "events": events,
        "train_seconds": seconds,
        "events_per_second_features": events
        / (timing["train_features_seconds"] + timing["holdout_features_seconds"]),
        "simulate_events": n_sim,
        "simulate_seconds": sim_seconds,
        "target_seconds": TARGETS["train_seconds_1m_events"],
        "met": seconds < TARGETS["train_seconds_1m_events"] * events / 1_000_000,
        "timing": timing,
        "holdout": {
            k: result.metrics[k]
            for k in ("auc_roc", "auc_pr", "recall_at_fpr_1pct", "recall_at_fpr_2pct")
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps(report, indent=2, default=str))
    return 0


def cmd_bench_detection(args: argparse.Namespace) -> int:
    """The scenario suite through the production decision path; JSON report."""
    from models.detection_bench import DEFAULT_SEEDS, bench, default_suite
    from models.registry import load_model
    from processors.rules import load_ruleset

    model = load_model(args.model)
    ruleset = load_ruleset(args.rules) if args.rules else load_ruleset()
    seeds = tuple(int(x) for x in args.seeds.split(",")) if args.seeds else DEFAULT_SEEDS
    report = bench(default_suite(args.days, args.users, seeds), model, ruleset)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2, default=str) + "\n")
    brief = {k: report[k] for k in ("targets", "currencies", "cases", "seconds")}
    print(json.dumps(brief, indent=2, default=str))
    return 0 if all(t["met"] for t in report["targets"].values()) or not args.strict else 1


def add_bench_commands(bench_subparsers) -> None:
    from models.codec_bench import add_bench_command as add_bench_codec
    from models.rules_bench import add_bench_command as add_bench_rules

    add_bench_rules(bench_subparsers)
    add_bench_codec(bench_subparsers)

    def cmd_bench_learning(args) -> int:  # imported when run: it loads XGBoost and pandas
        from models.bench_learning import cmd_bench_learning as run

        return run(args)

    p = bench_subparsers.add_parser("learning", help="6 simulated weeks, a new fraud pattern "
                                    "from week 4: recall and friction before/after retraining")
    p.add_argument("--out", default=".data/bench/learning.json", help="JSON report path")
    p.add_argument("--users", type=int, default=15_000)
    p.add_argument("--seed", type=int, default=31)
    p.add_argument("--rate", type=float, default=0.008,
                   help="new-pattern purchases per legit purchase, from week 4")
    p.add_argument("--rounds", type=int, default=200, help="boosting rounds")
    p.set_defaults(func=_run(cmd_bench_learning))

    p = bench_subparsers.add_parser(
        "detection", help="verdicts per fraud pattern and legit scenario on unseen seeds"
    )
    p.add_argument("--out", default=".data/bench/detection.json", help="JSON report path")
    p.add_argument("--days", type=int, default=14, help="days per simulated case")
    p.add_argument("--users", type=int, default=20_000, help="legit users per case")
    p.add_argument("--seeds", default="", help="comma-separated seeds, one case each (variants "
                   "base, busy, quiet in turn; default 101,202,303; never a training seed)")
    p.add_argument("--model", default=None, help="model version (default: the champion)")
    p.add_argument("--rules", default=None, help="rules file (default: the packaged one)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.set_defaults(func=_run(cmd_bench_detection))

    p = bench_subparsers.add_parser("train", help="training time on ~1 M simulated events")
    _sim_args(p, days=28, users=78_000)  # with the held-out week: about 1 M events
    p.add_argument("--out", default=".data/bench/train.json", help="JSON report path")
    p.set_defaults(func=_run(cmd_bench_train))
