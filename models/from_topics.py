"""Train on the platform's own labelled traffic: ``sentinel train --from-topics``.

    train_from_topics(settings, out_dir, TopicTrainConfig(since, until))

The source topics (purchases, auth events, chain transfers) are read and merged in event
time exactly as ``models/replay.py`` does, and run through ``FeatureEngine``: each purchase's
row holds the features computed from the state before it (point in time), the same values
the live worker computed. Events before ``since`` only warm the state up; nothing at or after
``until`` is read (default: ``labels_as_of`` minus the label delay, so that every purchase
in the window has had time to be labelled). Labels come from ``sentinel.labels.v1`` through a ``LabelBook`` as of
``labels_as_of`` (default: the latest event or label time on the topics, i.e. now in event
time): labels that arrived later are not used, the latest label of a purchase wins
(corrections), and a purchase without a label is legit only once the label delay has passed
(default 30 days); younger unlabelled purchases are left out.

Rows are split by time into train, test and a held-out window (the latest); the model is
evaluated, compared with the champion on the held-out window and reported exactly as the
simulated path does (``models/training.py``: metrics.json, report.html).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from infra.settings import Settings
from models.dataset import Dataset, build_dataset
from models.labels import DAY_MS, DEFAULT_LABEL_DELAY_DAYS, LabelBook
from models.registry import ModelRegistry
from models.replay import TIME_FIELD, read_topics
from models.training import TrainResult, fit_and_report, xgb_params
from processors.features import FeatureConfig, FeatureEngine
from processors.timeutil import to_ms


@dataclass(frozen=True)
class TopicTrainConfig:
    since: datetime | None = None
    until: datetime | None = None
    labels_as_of: datetime | None = None
    label_delay_days: float = DEFAULT_LABEL_DELAY_DAYS
    test_share: float = 0.15
    holdout_share: float = 0.2
    rounds: int = 300
    max_depth: int = 6
    learning_rate: float = 0.08
    nthread: int = 2
    baselines: bool = True
    seed: int = 7
    ratio_jitter: float = 0.003  # amount ratios in training (models.training.jitter_ratios)

    def __post_init__(self) -> None:
        if not 0 < self.holdout_share < 1 or not 0 <= self.test_share < 1 - self.holdout_share:
            raise ValueError("need 0 < holdout_share < 1 and 0 <= test_share < 1 - holdout_share")
        if self.since and self.until and self.since >= self.until:
            raise ValueError("--since must be before --until")

    def xgb_params(self, scale_pos_weight: float) -> dict:
        return xgb_params(self, scale_pos_weight)

    def describe(self) -> dict:
        return {"config": asdict(self), "provenance": {"topics": {
            "since": self.since, "until": self.until, "labels_as_of": self.labels_as_of,
            "label_delay_days": self.label_delay_days}}}


def _datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def load_sources(settings: Settings) -> tuple[list[tuple[str, dict]], list[dict]]:
    """(events merged in event time, labels) as they are on the topics now; the events hold
    the labels too, at their own time, for the confirmed-fraud features."""
    events = list(read_topics(settings))
    return events, [r for k, r in events if k == "label"]


def latest_ms(events: list[tuple[str, dict]], labels: list[dict]) -> int:
    """The latest event time on the topics: what "now" is in event time."""
    times = [to_ms(r[TIME_FIELD[k]]) or 0 for k, r in events[-1:]]
    times += [to_ms(lb["occurred_at"]) or 0 for lb in labels]
    return max(times, default=0)


def build_rows(events, labels, config: TopicTrainConfig,
               feature_config: FeatureConfig | None = None) -> tuple[Dataset, dict]:
    """Point-in-time rows for the purchases in [since, until) with what ``LabelBook`` knows,
    and counts of how each row got its label (and how many were still pending)."""
    as_of = to_ms(config.labels_as_of) if config.labels_as_of else latest_ms(events, labels)
    delay = int(config.label_delay_days * DAY_MS)
    until = to_ms(config.until) if config.until else as_of - delay
    book = LabelBook(labels, as_of, delay)
    data = build_dataset(events, FeatureEngine(feature_config),
                         since_ms=to_ms(config.since) if config.since else None,
                         until_ms=until, outcome_of=book)
    return data, {"labels_as_of_ms": as_of, "until_ms": until, "labels_read": len(labels),
                  **dict(book.counts)}


def split_by_time(data: Dataset, config: TopicTrainConfig) -> dict[str, Dataset]:
    """train, test and holdout: the rows in event-time order cut by the shares (by rows, not
    by time: the latest days hold only the purchases whose outcome is already known, so a cut
    by time would leave the last windows nearly empty)."""
    order = np.argsort(data.times_ms, kind="stable")
    n = len(order)
    test_at = int(n * (1 - config.test_share - config.holdout_share))
    holdout_at = int(n * (1 - config.holdout_share))
    parts = {"train": order[:test_at], "test": order[test_at:holdout_at],
             "holdout": order[holdout_at:]}
    splits = {}
    for name, rows in parts.items():
        mask = np.zeros(n, dtype=bool)
        mask[rows] = True
        splits[name] = part = data.take(mask)
        if len(part) == 0 or part.y.min() == part.y.max():
            raise ValueError(f"the {name} window ({len(part)} rows) needs fraud and legit "
                             "purchases: widen --since/--until or change the shares")
    return splits


def train_from_topics(settings: Settings, out_dir: str | Path, config: TopicTrainConfig, *,
                      registry: ModelRegistry | None = None, promote: bool = False,
                      force: bool = False, log=print, sources=None) -> TrainResult:
    """``sources``: (events, labels) already read by ``load_sources`` (else read now)."""
    started = time.perf_counter()
    events, labels = sources if sources is not None else load_sources(settings)
    read_s = time.perf_counter() - started
    feature_config = FeatureConfig(allowed_lateness_ms=settings.stream.allowed_lateness_ms,
                                   chain_lateness_ms=settings.stream.chain_lateness_ms)
    data, label_counts = build_rows(events, labels, config, feature_config)
    config = replace(config, labels_as_of=_datetime(label_counts["labels_as_of_ms"]),
                     until=_datetime(label_counts["until_ms"]))
    splits = split_by_time(data, config)
    timings = {"train_events": data.events, "holdout_events": 0, "late_events": data.late,
               "read_topics_seconds": read_s,
               "train_features_seconds": time.perf_counter() - started - read_s,
               "holdout_features_seconds": 0.0}
    log(f"{len(events)} events, {len(labels)} labels: rows {label_counts}; "
        + ", ".join(f"{n} {len(d)}" for n, d in splits.items()))
    train = splits.pop("train")
    return fit_and_report(out_dir, config, train, splits, timings, started, registry=registry,
                          promote=promote, force=force, log=log,
                          extra={"labels": label_counts})
