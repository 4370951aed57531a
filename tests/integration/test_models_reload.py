"""A running scorer process follows ``sentinel models promote`` without a restart."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from models.cli import add_commands
from models.registry import ModelRegistry, fingerprint
from processors.features import FEATURE_NAMES

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

SCORER = """
import sys, time
import numpy as np
from models.holder import ModelHolder
from models.registry import ModelRegistry
holder = ModelHolder(ModelRegistry(sys.argv[1]), check_every_s=0.05)
X = np.zeros((8, len(holder.model.feature_names)), dtype=np.float32)
seen, deadline = None, time.monotonic() + 30
while time.monotonic() < deadline:
    holder.maybe_reload()
    score = float(holder.model.predict(X)[0])
    if holder.model.version != seen:
        seen = holder.model.version
        print(seen, round(score, 6), flush=True)
        if seen == sys.argv[2]:
            break
    time.sleep(0.01)
"""


def _save(registry: ModelRegistry, seed: int) -> str:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, len(FEATURE_NAMES))).astype(np.float32)
    y = (X[:, seed % 5] > 0).astype(int)
    names = list(FEATURE_NAMES)
    booster = xgb.train(
        {"objective": "binary:logistic", "nthread": 1, "max_depth": 2},
        xgb.DMatrix(X, y, feature_names=names),
        5,
    )
    return registry.save(
        booster,
        {"feature_names": names, "training_fingerprint": fingerprint(X, y), "version": f"v{seed}"},
    )


def _promote_with_cli(version: str, root: Path) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["models", "promote", version, "--registry", str(root)])
    assert args.func(args) == 0


def test_running_scorer_switches_to_the_promoted_model(tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    v1, v2 = _save(registry, 1), _save(registry, 2)
    registry.promote(v1)
    proc = subprocess.Popen(
        [sys.executable, "-c", SCORER, str(registry.root), v2],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        first = proc.stdout.readline().split()
        assert first[0] == v1  # the scorer is running and scoring with v1
        _promote_with_cli(v2, registry.root)
        second = proc.stdout.readline().split()
        assert second and second[0] == v2 and second[1] != first[1]
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
