from __future__ import annotations

import json

import numpy as np
import pytest
import xgboost as xgb

from models.drift import training_distribution
from models.holder import ModelHolder
from models.loaded import contributions_dense, predict_dense
from models.registry import (
    ModelLoadError,
    ModelMismatchError,
    ModelRegistry,
    UnknownModelError,
    fingerprint,
    load_model,
    promote,
)
from processors.features import FEATURE_NAMES

pytestmark = pytest.mark.unit
NAMES = list(FEATURE_NAMES)


def _train(seed: int, names=NAMES) -> tuple[xgb.Booster, dict, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(400, len(names))).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0.5).astype(int)
    params = {"objective": "binary:logistic", "tree_method": "hist", "nthread": 2, "max_depth": 3}
    booster = xgb.train(params, xgb.DMatrix(X, y, feature_names=list(names)), 10)
    meta = {
        "feature_names": list(names),
        "training_fingerprint": fingerprint(X, y),
        "metrics": {"holdout": {"auc_roc": 0.99}},
        "thresholds": {"blocked": 0.85},
        "distributions": training_distribution(X, names),
    }
    return booster, meta, X


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry")


def test_save_load_predicts_like_the_booster(registry):
    booster, meta, X = _train(1)
    version = registry.save(booster, meta)
    registry.promote(version)
    model = registry.load()
    assert model.version == version and model.feature_names == NAMES
    np.testing.assert_allclose(
        model.predict(X), booster.predict(xgb.DMatrix(X, feature_names=NAMES)), rtol=1e-6
    )
    contrib = model.contributions(X[:5])
    assert contrib.shape == (5, len(NAMES) + 1)
    margin = booster.predict(xgb.DMatrix(X[:5], feature_names=NAMES), output_margin=True)
    np.testing.assert_allclose(contrib.sum(axis=1), margin, rtol=1e-4, atol=1e-4)
    assert model.predict(np.zeros((0, len(NAMES)))).shape == (0,)


def test_predict_dense_gives_what_inplace_predict_gives(registry):
    """``LoadedModel.predict`` calls xgboost's C function itself: bit for bit the wrapper's
    output, for the shipped champion and a small model, on 1 to 500 rows with NaN, infinities
    and -0.0 among the values."""
    booster, meta, _ = _train(2)
    small = registry.load(registry.save(booster, meta))
    rng = np.random.default_rng(7)
    for model in (small, load_model()):
        for rows in (1, 2, 4, 10, 49, 500):
            X = rng.normal(scale=50.0, size=(rows, len(NAMES))).astype(np.float32)
            X[rng.random(X.shape) < 0.1] = np.nan
            X[0, :3] = (np.inf, -np.inf, -0.0)
            expected = model.booster.inplace_predict(X, validate_features=False)
            got = model.predict(X)
            assert got.dtype == expected.dtype and got.shape == expected.shape == (rows,)
            assert got.tobytes() == expected.tobytes()
            assert predict_dense(model.booster, X).tobytes() == expected.tobytes()
    for bad in (X.astype(np.float64), np.asfortranarray(X), X[:0]):
        with pytest.raises(ValueError, match="C-contiguous float32"):
            predict_dense(small.booster, bad)


def test_contributions_give_what_the_dmatrix_wrapper_gives(registry):
    """``LoadedModel.contributions`` makes the DMatrix and calls xgboost's C functions itself:
    bit for bit what ``Booster.predict(DMatrix(X), pred_contribs=True)`` gives, Saabas and
    TreeSHAP, for the shipped champion and a small model, on 1 to 500 rows with NaN, huge
    values and -0.0 among them; an infinity is refused by both (a DMatrix takes none)."""
    booster, meta, _ = _train(3)
    small = registry.load(registry.save(booster, meta))
    rng = np.random.default_rng(8)
    for model in (small, load_model()):
        for rows in (1, 2, 4, 10, 49, 500):
            X = rng.normal(scale=50.0, size=(rows, len(NAMES))).astype(np.float32)
            X[rng.random(X.shape) < 0.1] = np.nan
            X[0, :3] = (3e38, -3e38, -0.0)
            for exact in (False, True):
                expected = model.booster.predict(xgb.DMatrix(X, nthread=1), pred_contribs=True,
                                                 approx_contribs=not exact,
                                                 validate_features=False)  # fmt: skip
                got = model.contributions(X, exact=exact)
                assert got.dtype == expected.dtype == np.float32
                assert got.shape == expected.shape == (rows, len(NAMES) + 1)
                assert got.tobytes() == expected.tobytes()
                assert contributions_dense(model.booster, X, exact).tobytes() == expected.tobytes()
    X[0, 0] = np.inf
    with pytest.raises(xgb.core.XGBoostError, match="inf"):
        xgb.DMatrix(X, nthread=1)
    with pytest.raises(xgb.core.XGBoostError, match="inf"):
        small.contributions(X)
    assert small.contributions(np.zeros((0, len(NAMES)))).shape == (0, len(NAMES) + 1)
    for bad in (X.astype(np.float64), np.asfortranarray(X), X[:0]):
        with pytest.raises(ValueError, match="C-contiguous float32"):
            contributions_dense(small.booster, bad)


def test_scoring_refuses_a_matrix_of_the_wrong_width(registry):
    """xgboost's own feature checks are skipped on the scoring path: the width check is ours."""
    booster, meta, X = _train(1)
    model = registry.load(registry.save(booster, meta))
    for call in (model.predict, model.contributions):
        with pytest.raises(ValueError, match=f"expected {len(NAMES)} feature columns, got"):
            call(X[:2, :-1])


def test_artifact_is_native_xgboost_with_metadata(registry):
    booster, meta, _ = _train(2)
    version = registry.save(booster, meta)
    files = sorted(p.name for p in (registry.root / version).iterdir())
    assert files == ["metadata.json", "model.ubj"]
    stored = json.loads((registry.root / version / "metadata.json").read_text())
    for key in (
        "version",
        "feature_names",
        "feature_types",
        "training_fingerprint",
        "metrics",
        "thresholds",
        "created_at",
        "code_revision",
        "distributions",
        "model_sha256",
    ):
        assert key in stored
    assert stored["version"] == version and stored["feature_names"] == NAMES


def test_refuses_a_mismatched_feature_set(registry):
    other = [*NAMES[:-1], "bogus_feature"]
    booster, meta, _ = _train(3, other)
    registry.promote(registry.save(booster, meta))
    with pytest.raises(ModelMismatchError, match="bogus_feature"):
        registry.load()


def test_refuses_a_reordered_feature_set(registry):
    booster, meta, _ = _train(3, [NAMES[1], NAMES[0], *NAMES[2:]])
    version = registry.save(booster, meta)
    with pytest.raises(ModelMismatchError, match="order differs"):
        registry.load(version)


@pytest.mark.parametrize("keep_hash", [True, False])
def test_refuses_a_corrupt_file(registry, keep_hash):
    booster, meta, _ = _train(4)
    version = registry.save(booster, meta)
    path = registry.root / version / "model.ubj"
    path.write_bytes(path.read_bytes()[:100] + b"garbage")
    if not keep_hash:  # no hash: refused unverified (XGBoost may crash on damaged UBJSON)
        meta_path = registry.root / version / "metadata.json"
        stored = json.loads(meta_path.read_text())
        del stored["model_sha256"]
        meta_path.write_text(json.dumps(stored))
    with pytest.raises(ModelLoadError, match=version):
        registry.load(version)


def test_unknown_version_and_no_champion(registry):
    with pytest.raises(UnknownModelError):
        registry.load()
    with pytest.raises(UnknownModelError):
        registry.load("nope")


def test_promote_switches_load_model(tmp_path, monkeypatch):
    monkeypatch.setenv("SENTINEL_MODEL_DIR", str(tmp_path / "reg"))
    registry = ModelRegistry()
    v1 = registry.save(*_train(5)[:2])
    v2 = registry.save(*_train(6)[:2])
    promote(v1)
    assert load_model().version == v1
    promote(v2)
    assert load_model().version == v2
    promote(v1, role="challenger")
    rows = {r["version"]: r["role"] for r in registry.list_models()}
    assert rows == {v1: "challenger", v2: "champion"}


def test_holder_follows_the_pointer_without_restart(registry):
    v1 = registry.save(*_train(7)[:2])
    v2 = registry.save(*_train(8)[:2])
    registry.promote(v1)
    now = [0.0]
    holder = ModelHolder(registry, check_every_s=10, clock=lambda: now[0])
    assert holder.model.version == v1 and holder.challenger is None
    registry.promote(v2)
    registry.promote(v1, role="challenger")
    assert holder.maybe_reload() is False  # not due yet
    now[0] = 11
    assert holder.maybe_reload() is True
    assert holder.model.version == v2 and holder.challenger.version == v1
    now[0] = 22
    assert holder.maybe_reload() is False  # pointer unchanged


def test_holder_keeps_its_model_when_the_new_one_is_bad(registry):
    v1 = registry.save(*_train(9)[:2])
    booster, meta, _ = _train(10, [*NAMES[:-1], "bogus_feature"])
    bad = registry.save(booster, meta)
    registry.promote(v1)
    holder = ModelHolder(registry, check_every_s=0)
    registry.promote(bad)
    assert holder.reload() is False
    assert holder.model.version == v1
    assert isinstance(holder.last_error, ModelMismatchError)
