"""The promotion gate: a candidate worse than the champion on its held-out window is refused
(and the CLI says why) unless forced; a better one is promoted."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import xgboost as xgb

from models.champion import compare_on_window, promotion_check, window_metrics
from models.cli import add_commands
from models.dataset import Dataset
from models.registry import ModelRegistry

pytestmark = pytest.mark.unit

NAMES = ("signal", "noise")


def _window(n: int = 2000, seed: int = 1) -> Dataset:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(np.int8)
    X = np.column_stack([y + rng.normal(0, 0.6, n), rng.normal(0, 1, n)]).astype(np.float32)
    return Dataset(X, y, np.arange(n, dtype=np.int64), np.where(y == 1, "p", ""),
                   np.array([f"p{i}" for i in range(n)]), NAMES)


def _save(registry: ModelRegistry, window: Dataset, column: int, name: str) -> str:
    """A model trained on one column only: ``signal`` is good, ``noise`` is useless."""
    X = window.X.copy()
    X[:, 1 - column] = 0
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2, "nthread": 1},
                        xgb.DMatrix(X, window.y, feature_names=list(NAMES)), 20)
    return registry.save(booster, {"feature_names": list(NAMES), "version": name}, window=window)


@pytest.fixture
def registry(tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    window = _window()
    registry.promote(_save(registry, window, 0, "good"))
    _save(registry, window, 1, "bad")
    _save(registry, _window(seed=2), 0, "also-good")
    return registry


def _cli(registry: ModelRegistry, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="sentinel")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["models", "promote", *argv, "--registry", str(registry.root)])
    return args.func(args)


def test_window_metrics_measure_recall_and_friction():
    y = np.array([1, 1, 0, 0, 0, 0])
    got = window_metrics(y, np.array([0.9, 0.5, 0.45, 0.1, 0.0, 0.2]))
    assert got["recall_at_policy"] == {"require_2fa": 1.0, "manual_review": 0.5, "blocked": 0.5}
    assert got["legit_friction"] == 0.25 and got["auc_roc"] == 1.0


def test_worse_candidate_is_refused_with_the_reason(registry, capsys):
    check = promotion_check(registry, "bad")
    assert not check.allowed and "AUC-ROC" in check.message and "--force" in check.message
    assert _cli(registry, "bad") == 1
    assert "worse than champion good" in capsys.readouterr().err
    assert registry.pointer()["champion"] == "good"


def test_force_promotes_a_worse_candidate(registry, capsys):
    assert _cli(registry, "bad", "--force") == 0
    assert registry.pointer()["champion"] == "bad" and "forced" in capsys.readouterr().out


def test_a_candidate_not_worse_is_promoted(registry):
    assert promotion_check(registry, "also-good").allowed
    assert _cli(registry, "also-good") == 0 and registry.pointer()["champion"] == "also-good"


def test_no_champion_or_other_features_is_not_comparable(tmp_path):
    registry = ModelRegistry(tmp_path / "r")
    window = _window()
    comparison = compare_on_window(registry, window, window.X[:, 0])
    assert not comparison["comparable"] and "no champion" in comparison["note"]
