"""``sentinel train --from-topics`` on real Kafka: simulated traffic and labels published to a
test prefix, rows rebuilt from the topics with the labels known at training time, features
point in time, a report with the champion comparison, and the promotion gate."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from models.dataset import Dataset
from models.from_topics import TopicTrainConfig, build_rows, load_sources, train_from_topics
from models.publish import publish_events
from models.registry import ModelRegistry
from models.simulator import SimConfig, event_time, simulate
from processors.features import FEATURE_NAMES, FeatureEngine
from tests.support.models import constant_model_registry

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
# Two weeks of traffic that ended five weeks ago: most chargebacks (median 12 days) are in.
SIM = SimConfig(seed=11, days=14, n_users=1200, n_shows=40, fraud_rate=0.08,
                start=NOW - timedelta(days=60))
SINCE, UNTIL = SIM.start + timedelta(days=4), SIM.start + timedelta(days=14)
AS_OF = SIM.start + timedelta(days=50)
DELAY = timedelta(days=40)  # unlabelled purchases after day 10 are still pending


def _edited_labels(events: list[tuple[str, dict]]) -> tuple[list[dict], dict[str, str]]:
    """The simulator's labels with a few removed, one corrected, one arriving too late."""
    labels = [r for k, r in events if k == "label"]
    purchases = {r["purchase_id"]: r for k, r in events if k == "purchase"}
    known = [lb for lb in labels if lb["occurred_at"] <= AS_OF
             and purchases[lb["purchase_id"]]["occurred_at"] >= SINCE]
    fraud = next(lb for lb in known if lb["is_fraud"])
    legit = next(lb for lb in known if not lb["is_fraud"])
    dropped = {lb["purchase_id"] for lb in labels[::25]} - {fraud["purchase_id"],
                                                           legit["purchase_id"]}
    edits = {"corrected": fraud["purchase_id"], "too_late": legit["purchase_id"]}
    extra = [
        {**fraud, "occurred_at": fraud["occurred_at"] + timedelta(hours=6), "is_fraud": False,
         "source": "MANUAL_REVIEW", "pattern": None},
        {**legit, "occurred_at": AS_OF + timedelta(days=1), "is_fraud": True,
         "source": "CHARGEBACK", "pattern": "card_testing"},
    ]
    return [lb for lb in labels if lb["purchase_id"] not in dropped] + extra, edits


def _expected(events, labels) -> dict[str, int]:
    """purchase_id -> label a model trained at AS_OF may use, straight from the definition."""
    latest: dict[str, dict] = {}
    for lb in sorted(labels, key=lambda lb: (lb["occurred_at"], lb["source"] == "MANUAL_REVIEW")):
        if lb["occurred_at"] <= AS_OF:
            latest[lb["purchase_id"]] = lb
    out = {}
    for kind, r in events:
        if kind != "purchase" or not SINCE <= r["occurred_at"] < UNTIL:
            continue
        if r["purchase_id"] in latest:
            out[r["purchase_id"]] = int(latest[r["purchase_id"]]["is_fraud"])
        elif r["occurred_at"] + DELAY <= AS_OF:
            out[r["purchase_id"]] = 0
    return out


@pytest.fixture(scope="module")
def sim_events():
    return list(simulate(SIM))


def _point_in_time(sources, labels, data: Dataset, sample: int = 25) -> None:
    """A row equals FeatureEngine run over only the events (labels included: confirmed-fraud
    marks) before the purchase."""
    events = sorted([(event_time(k, r), k == "label", n, k, r) for n, (k, r) in
                     enumerate(sources + [("label", lb) for lb in labels])])
    times: dict = {}
    for at, _, _, _, _ in events:
        times[at] = times.get(at, 0) + 1
    rows = {pid: k for k, pid in enumerate(data.purchase_ids)}
    purchases = [r for _, _, _, k, r in events if k == "purchase" and r["purchase_id"] in rows
                 and times[r["occurred_at"]] == 1]  # no other event at the same instant
    for p in purchases[:: max(1, len(purchases) // sample)]:
        engine = FeatureEngine()
        for at, _, _, kind, r in events:
            if at < p["occurred_at"]:
                engine.process(kind, r)
        expected = engine.process("purchase", p)
        got = data.X[rows[p["purchase_id"]]]
        np.testing.assert_array_equal(got, np.asarray([expected[n] for n in FEATURE_NAMES],
                                                      dtype=np.float32))


def test_rows_labels_and_point_in_time_from_the_topics(settings, sim_events, tmp_path):
    labels, edits = _edited_labels(sim_events)
    sources = [(k, r) for k, r in sim_events if k != "label"]
    labels = [lb for lb in labels if lb["occurred_at"] <= NOW]  # what has arrived by now
    sent = publish_events(settings, sources + [("label", lb) for lb in labels])
    assert sent["purchase"] == sum(1 for k, _ in sim_events if k == "purchase")
    events, read_labels = load_sources(settings)
    assert len(events) == len(sources) + len(labels) and len(read_labels) == len(labels)

    config = TopicTrainConfig(since=SINCE, until=UNTIL, labels_as_of=AS_OF,
                              label_delay_days=DELAY.days, rounds=30, baselines=False,
                              test_share=0.25, holdout_share=0.3)  # fraud comes in bursts
    data, counts = build_rows(events, read_labels, config)
    expected = _expected(sim_events, labels)
    assert dict(zip(data.purchase_ids.tolist(), data.y.tolist(), strict=True)) == expected
    assert counts["pending"] > 0 and counts["legit_by_delay"] > 0  # dropped labels
    assert expected[edits["corrected"]] == 0 and expected[edits["too_late"]] == 0
    _point_in_time(sources, labels, data)

    registry = ModelRegistry(constant_model_registry(tmp_path / "registry"))
    result = train_from_topics(settings, tmp_path / "run", config, registry=registry,
                               promote=True, log=lambda _: None)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    comparison = metrics["champion_comparison"]
    assert comparison["comparable"] and comparison["champion"] == "constant-test"
    assert comparison["window"]["rows"] == metrics["data"]["holdout"]["rows"]
    assert comparison["candidate"]["auc_roc"] > comparison["champion_metrics"]["auc_roc"]
    assert metrics["labels"]["labels_read"] == len(labels)
    assert registry.pointer()["champion"] == result.version  # better: promoted
    assert (registry.root / result.version / "holdout.npz").is_file()
    page = (tmp_path / "run" / "report.html").read_text()
    assert "Against the champion" in page and "constant-test" in page
    assert metrics["data"]["train"]["to"] < metrics["data"]["test"]["from"]
    assert metrics["data"]["test"]["to"] < metrics["data"]["holdout"]["from"]
