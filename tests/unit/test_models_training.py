from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from models import metrics as m
from models.cli import add_commands
from models.dataset import Dataset, build_dataset
from models.registry import ModelRegistry, fingerprint
from models.simulator import PATTERNS, SimConfig, simulate
from models.training import TrainConfig, train
from processors.features import FEATURE_NAMES, FeatureEngine

pytestmark = pytest.mark.unit

SMALL = TrainConfig(
    sim=SimConfig(seed=21, days=10, n_users=4000, n_shows=60, fraud_rate=0.05),
    variants=(SimConfig(seed=22, days=5, n_users=2000, n_shows=40, fraud_rate=0.05,
                        crowd_groups=3.0),),
    warmup_days=3,
    holdout_days=4,
    rounds=40,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    registry = ModelRegistry(out / "registry")
    result = train(out / "run", SMALL, registry=registry, promote=True, log=lambda _: None)
    return result, registry


def test_dataset_rows_are_the_feature_engines_output():
    events = list(simulate(SimConfig(seed=3, days=2, n_users=800, n_shows=30, fraud_rate=0.05)))
    data = build_dataset(events)
    engine = FeatureEngine()
    expected = [
        [f[n] for n in FEATURE_NAMES]
        for k, r in events
        if (f := engine.process(k, r)) is not None  # labels mark entities, as in the dataset
    ]
    np.testing.assert_array_equal(data.X, np.asarray(expected, dtype=np.float32))
    assert data.feature_names == tuple(FEATURE_NAMES) and data.late == 0
    assert set(data.patterns[data.y == 1]) <= set(PATTERNS) and set(data.patterns[data.y == 0]) == {
        ""
    }


def test_writes_metrics_report_and_registers_the_champion(trained):
    result, registry = trained
    metrics = json.loads((result.out_dir / "metrics.json").read_text())
    for key in (
        "auc_roc",
        "auc_pr",
        "recall_at_fpr_1pct",
        "recall_at_fpr_2pct",
        "per_pattern_recall",
        "models",
    ):
        assert key in metrics
    assert set(metrics["models"]) == {
        "xgboost",
        "logistic_regression",
        "random_forest",
        "isolation_forest",
    }
    assert set(metrics["splits"]["holdout"]["confusion"]) == {"0.40", "0.65", "0.85"}
    assert metrics["feature_importance"][0]["mean_abs_contribution"] > 0
    page = (result.out_dir / "report.html").read_text()
    assert (
        page.count("<svg") >= 5
        and "<script" not in page
        and "http" not in page.replace("http://www.w3.org", "")
    )
    assert registry.pointer()["champion"] == result.version == metrics["model_version"]


def test_report_lists_leakage_and_keeps_friendly_fraud_apart(trained):
    result, _ = trained
    metrics = json.loads((result.out_dir / "metrics.json").read_text())
    leakage = metrics["leakage"]
    assert set(leakage["auc_alone"]) == set(FEATURE_NAMES)
    assert all(s["auc_alone"] > leakage["threshold"] for s in leakage["suspects"])
    assert "Leakage suspects" in (result.out_dir / "report.html").read_text()
    left_out = metrics["friendly_fraud"]["rows_left_out"]
    assert sum(left_out.values()) > 0  # the simulation made some, none were trained on
    for split in ("test", "holdout"):
        assert "friendly_fraud" not in metrics["splits"][split]["per_pattern_recall"]


def test_metrics_match_a_recomputation_from_the_saved_model(trained):
    result, registry = trained
    metrics = json.loads((result.out_dir / "metrics.json").read_text())
    model = registry.load()  # the champion, checked against processors.features.FEATURE_NAMES
    for split in ("holdout", "test"):
        data = Dataset.load(result.out_dir / f"{split}.npz")
        recomputed = json.loads(
            json.dumps(m.evaluate(data.y, model.predict(data.X), data.patterns))
        )
        assert recomputed == metrics["splits"][split]
    assert metrics["auc_roc"] == metrics["splits"]["holdout"]["auc_roc"]


def test_metadata_has_fingerprint_thresholds_and_distributions(trained):
    result, registry = trained
    meta = registry.metadata(result.version)
    assert meta["feature_names"] == list(FEATURE_NAMES)
    assert len(meta["training_fingerprint"]) == 64 and meta["training_rows"] > 0
    assert meta["thresholds"]["blocked"] == 0.85 and "fpr_2pct" in meta["thresholds"]
    assert set(meta["distributions"]) == set(FEATURE_NAMES)
    assert fingerprint(np.zeros((2, 2))) != fingerprint(np.ones((2, 2)))


def test_cli_registers_simulate_train_and_models(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="sentinel")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    out = tmp_path / "sim.jsonl"
    args = parser.parse_args(["simulate", "--days", "1", "--users", "300", "--out", str(out)])
    assert args.func(args) == 0 and out.stat().st_size > 0
    args = parser.parse_args(["models", "list", "--registry", str(tmp_path / "empty")])
    assert args.func(args) == 0 and "no models" in capsys.readouterr().out
    args = parser.parse_args(["models", "show", "nope", "--registry", str(tmp_path / "empty")])
    assert args.func(args) == 1
