"""Training data: events through the pipeline's own ``FeatureEngine``, in event time, one row
per purchase (features from state before it), labelled with its eventual label (simulated
traffic: the label records in the stream) or with what a ``LabelBook`` knows (the topics)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from processors.features import FEATURE_NAMES, FeatureConfig, FeatureEngine, LateEventError


@dataclass
class Dataset:
    X: np.ndarray  # float32 (rows, len(feature_names))
    y: np.ndarray  # int8, 1 = fraud
    times_ms: np.ndarray  # int64 event time of each purchase
    patterns: np.ndarray  # str, "" for legit
    purchase_ids: np.ndarray  # str
    feature_names: tuple[str, ...]
    events: int = 0  # records read, labels included
    late: int = 0  # records the engine refused as late

    def __len__(self) -> int:
        return len(self.y)

    def take(self, mask: np.ndarray) -> Dataset:
        return Dataset(
            self.X[mask],
            self.y[mask],
            self.times_ms[mask],
            self.patterns[mask],
            self.purchase_ids[mask],
            self.feature_names,
            self.events,
            self.late,
        )

    def save(self, path: str | Path) -> None:
        np.savez_compressed(
            path,
            X=self.X,
            y=self.y,
            times_ms=self.times_ms,
            patterns=self.patterns,
            purchase_ids=self.purchase_ids,
            feature_names=np.array(self.feature_names),
        )

    @classmethod
    def load(cls, path: str | Path) -> Dataset:
        with np.load(path, allow_pickle=False) as z:
            return cls(
                z["X"],
                z["y"],
                z["times_ms"],
                z["patterns"],
                z["purchase_ids"],
                tuple(str(n) for n in z["feature_names"]),
            )


# (purchase_id, event time ms) -> (is_fraud, pattern), or None while the outcome is unknown
OutcomeOf = Callable[[str, int], tuple[bool, str] | None]


def build_dataset(
    events: Iterable[tuple[str, dict]],
    engine: FeatureEngine | None = None,
    *,
    since_ms: int | None = None,
    until_ms: int | None = None,
    outcome_of: OutcomeOf | None = None,
) -> Dataset:
    """Run ``events`` through ``engine`` in their order; rows for purchases in
    [``since_ms``, ``until_ms``) (earlier ones only warm the state up, later ones are not
    read). Labels come from the stream's label records, or from ``outcome_of`` when given
    (label records in the stream are then ignored). Purchases without a label are dropped."""
    engine = engine or FeatureEngine(FeatureConfig())
    rows: list[list[float]] = []
    times: list[int] = []
    ids: list[str] = []
    labels: dict[str, tuple[bool, str]] = {}
    n_events = n_late = 0
    for kind, record in events:
        n_events += 1
        if kind == "label":
            if outcome_of is None:
                labels[record["purchase_id"]] = (record["is_fraud"], record.get("pattern") or "")
            engine.process(kind, record)  # confirmed fraud marks (features of later purchases)
            continue
        if until_ms is not None and _event_ms(kind, record) >= until_ms:
            break
        try:
            features = engine.process(kind, record)
        except LateEventError:
            n_late += 1
            continue
        if features is None:
            continue
        t = int(record["occurred_at"].timestamp() * 1000)
        if since_ms is not None and t < since_ms:
            continue
        if outcome_of is not None:
            known = outcome_of(record["purchase_id"], t)
            if known is None:
                continue
            labels[record["purchase_id"]] = known
        rows.append([features[name] for name in FEATURE_NAMES])
        times.append(t)
        ids.append(record["purchase_id"])
    return _assemble(rows, times, ids, labels, n_events, n_late)


def _event_ms(kind: str, record: dict) -> int:
    at = record["block_time" if kind == "transfer" else "occurred_at"]
    return int(at.timestamp() * 1000)


def _assemble(rows, times, ids, labels, n_events: int, n_late: int) -> Dataset:
    keep = [k for k, pid in enumerate(ids) if pid in labels]
    X = np.asarray(rows, dtype=np.float32).reshape(-1, len(FEATURE_NAMES))[keep]
    y = np.array([labels[ids[k]][0] for k in keep], dtype=np.int8)
    patterns = np.array([labels[ids[k]][1] for k in keep], dtype=str)
    return Dataset(
        X,
        y,
        np.asarray(times, dtype=np.int64)[keep],
        patterns,
        np.array([ids[k] for k in keep], dtype=str),
        tuple(FEATURE_NAMES),
        n_events,
        n_late,
    )


def concat(*parts: Dataset) -> Dataset:
    """Rows of several datasets (same features), in the given order."""
    names = parts[0].feature_names
    if any(p.feature_names != names for p in parts):
        raise ValueError("datasets with different features cannot be concatenated")
    return Dataset(
        np.concatenate([p.X for p in parts]),
        np.concatenate([p.y for p in parts]),
        np.concatenate([p.times_ms for p in parts]),
        np.concatenate([p.patterns for p in parts]),
        np.concatenate([p.purchase_ids for p in parts]),
        names,
        sum(p.events for p in parts),
        sum(p.late for p in parts),
    )
