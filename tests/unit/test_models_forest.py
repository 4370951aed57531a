"""The native tree predictor (``models/forest.py``, ``processors/native/src/trees.rs``) gives
bit for bit what XGBoost's ``inplace_predict`` gives, and bit for bit its Saabas contributions
(``pred_contribs=True, approx_contribs=True``), for the shipped champion and for small
boosters of every shape we train; every other model is refused and scored by XGBoost."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xgboost as xgb

import models.forest
from models.forest import NotNative, forest_of
from models.loaded import LoadedModel, predict_dense
from models.registry import load_model
from processors._native import Forest

pytestmark = pytest.mark.unit

WIDTH = 6
ROWS = (1, 2, 7, 8, 9, 64, 500)


def _native(forest: Forest, X: np.ndarray) -> np.ndarray:
    out = np.empty(len(X), dtype=np.float32)
    forest.predict(X, out)
    return out


def _same_bits(forest: Forest, booster: xgb.Booster, X: np.ndarray) -> None:
    expected = booster.inplace_predict(X, validate_features=False)
    assert expected.dtype == np.float32
    got = _native(forest, X)
    mismatched = np.flatnonzero(got.view(np.int32) != expected.view(np.int32))
    assert not len(mismatched), (mismatched[:5], got[mismatched[:5]], expected[mismatched[:5]])


def _same_contributions(forest: Forest, booster: xgb.Booster, X: np.ndarray) -> None:
    """Saabas contributions, bit for bit; ±inf (which a DMatrix refuses) made NaN first."""
    X = np.where(np.isinf(X), np.float32(np.nan), X)
    expected = booster.predict(xgb.DMatrix(X, nthread=1), pred_contribs=True,
                               approx_contribs=True, validate_features=False)  # fmt: skip
    assert expected.dtype == np.float32 and expected.shape == (len(X), X.shape[1] + 1)
    got = np.empty_like(expected)
    forest.contributions(X, got)
    mismatched = np.argwhere(got.view(np.int32) != expected.view(np.int32))
    assert not len(mismatched), (mismatched[:5], got[tuple(mismatched[:5].T)],
                                 expected[tuple(mismatched[:5].T)])  # fmt: skip


def _split_conditions(booster: xgb.Booster, width: int) -> list[np.ndarray]:
    """Every split condition of the booster, per feature, as float32."""
    trees = json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"]
    per_feature: list[list[float]] = [[] for _ in range(width)]
    for tree in trees:
        for left, feature, condition in zip(
            tree["left_children"], tree["split_indices"], tree["split_conditions"], strict=True
        ):
            if left != -1:
                per_feature[feature].append(condition)
    return [np.unique(np.asarray(c or [0.0], dtype=np.float32)) for c in per_feature]


def _rows(rng: np.random.Generator, conditions: list[np.ndarray], rows: int) -> np.ndarray:
    """Rows whose values are split conditions themselves, their float32 neighbours, NaN,
    ±inf, ±0, subnormals, huge values and plain random values, column by column."""
    width = len(conditions)
    X = np.empty((rows, width), dtype=np.float32)
    for j, cond in enumerate(conditions):
        on = rng.choice(cond, size=rows)
        X[:, j] = on
        step = rng.random(rows)
        up, down = step < 0.15, (0.15 <= step) & (step < 0.3)
        X[up, j] = np.nextafter(on[up], np.float32(np.inf))
        X[down, j] = np.nextafter(on[down], np.float32(-np.inf))
    special = np.array(
        [
            np.nan,
            np.inf,
            -np.inf,
            0.0,
            -0.0,
            1e-45,
            -1e-45,
            1.2e-38,
            -3e-39,
            3.4028235e38,
            -3.4028235e38,
            1e30,
            -1e30,
        ],
        dtype=np.float32,
    )
    pick = rng.random(X.shape)
    X[pick < 0.12] = rng.choice(special, size=int((pick < 0.12).sum()))
    noise = (0.12 <= pick) & (pick < 0.2)
    X[noise] = rng.normal(scale=100.0, size=int(noise.sum())).astype(np.float32)
    return X


def test_the_shipped_champion_is_native_and_gives_xgboosts_bits():
    """The champion (300 trees, 70 features) is walked natively, and every probability is
    XGBoost's to the bit, batch size by batch size, over 0 to 2 000 rows with values on and
    beside every split, NaN, infinities, zeros, subnormals and huge values."""
    model = load_model()
    assert model.forest is not None and model.not_native is None
    assert len(model.forest) == len(model.booster.get_dump()) == 300
    conditions = _split_conditions(model.booster, len(model.feature_names))
    rng = np.random.default_rng(20)
    for rows in (*ROWS, 2000):
        X = _rows(rng, conditions, rows)
        _same_bits(model.forest, model.booster, X)
        assert model.predict(X).tobytes() == predict_dense(model.booster, X).tobytes()
    for X in (np.full((3, 70), np.nan, np.float32), np.zeros((3, 70), np.float32)):
        assert model.predict(X).tobytes() == predict_dense(model.booster, X).tobytes()
    assert model.predict(np.zeros((0, 70))).shape == (0,)


def test_rows_without_a_missing_value_give_xgboosts_bits():
    """Blocks of rows holding no NaN take the walk's dense step (``Node::next``): the same
    bits, for the champion's predictions and contributions, alone and in batches where blocks
    with and without a NaN alternate (whole blocks of 8, a short last one, a few rows)."""
    model = load_model()
    assert model.forest is not None
    conditions = _split_conditions(model.booster, len(model.feature_names))
    rng = np.random.default_rng(22)
    for rows in (*ROWS, 2000):
        X = _rows(rng, conditions, rows)
        dense = np.where(np.isnan(X), np.float32(-1.0), X)
        _same_bits(model.forest, model.booster, dense)
        mixed = dense.copy()
        mixed[::16, 5] = np.nan  # every other block of 8 holds one
        _same_bits(model.forest, model.booster, mixed)
        finite = np.where(np.isinf(dense), np.float32(3.0), dense)
        _same_contributions(model.forest, model.booster, finite)


def test_the_shipped_champions_contributions_are_xgboosts_bits():
    """Saabas contributions of the champion, natively (``LoadedModel.contributions``): every
    value XGBoost's to the bit, over 1 to 2 000 rows with values on and beside every split,
    NaN, zeros, subnormals and huge values, and all-NaN and all-zero rows."""
    model = load_model()
    assert model.forest is not None
    conditions = _split_conditions(model.booster, len(model.feature_names))
    rng = np.random.default_rng(21)
    for rows in (*ROWS, 2000):
        _same_contributions(model.forest, model.booster, _rows(rng, conditions, rows))
    for X in (np.full((3, 70), np.nan, np.float32), np.zeros((3, 70), np.float32)):
        _same_contributions(model.forest, model.booster, X)


def _train(params: dict, rounds: int, seed: int, missing: float = 0.1) -> xgb.Booster:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(600, WIDTH)).astype(np.float32)
    X[:, 1] = np.round(X[:, 1] * 2)  # few distinct values: many rows exactly on a split
    y = X[:, 0] + 0.5 * X[:, 1] - X[:, 2] * X[:, 3] + rng.normal(scale=0.5, size=600) > 0.3
    X[rng.random(X.shape) < missing] = np.nan
    base = {"objective": "binary:logistic", "tree_method": "hist", "nthread": 1, "seed": seed}
    return xgb.train(base | params, xgb.DMatrix(X, y.astype(int)), rounds)


SHAPES = {
    "depth 1": ({"max_depth": 1}, 20),
    "depth 3": ({"max_depth": 3}, 30),
    "depth 10": ({"max_depth": 10, "min_child_weight": 0}, 15),
    "one tree": ({"max_depth": 4}, 1),
    "many trees": ({"max_depth": 2, "eta": 0.05}, 400),
    "base_score given": ({"max_depth": 3, "base_score": 0.2}, 10),
    "base_score near 0": ({"max_depth": 3, "base_score": 1e-9, "min_child_weight": 0}, 10),
    "base_score near 1": ({"max_depth": 3, "base_score": 0.9999999, "min_child_weight": 0}, 10),
    "one-leaf trees": ({"max_depth": 3, "gamma": 1e9}, 5),
    "max_delta_step": ({"max_depth": 5, "max_delta_step": 1.0}, 20),
    "scale_pos_weight": ({"max_depth": 6, "scale_pos_weight": 50.0, "eta": 0.8}, 20),
    "gamma": ({"max_depth": 6, "gamma": 2.0}, 20),
    "lossguide": ({"grow_policy": "lossguide", "max_leaves": 12, "max_depth": 0}, 20),
    "exact": ({"tree_method": "exact", "max_depth": 4}, 20),
    "approx": ({"tree_method": "approx", "max_depth": 4}, 20),
    "subsampled like ours": (
        {"max_depth": 6, "subsample": 0.9, "colsample_bytree": 0.8, "min_child_weight": 2},
        30,
    ),
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("missing", [0.1, 0.8])
def test_small_boosters_give_xgboosts_bits(shape, missing):
    params, rounds = SHAPES[shape]
    booster = _train(params, rounds, seed=len(shape), missing=missing)
    forest = forest_of(booster)
    assert len(forest) == rounds
    conditions = _split_conditions(booster, WIDTH)
    rng = np.random.default_rng(rounds)
    for rows in ROWS:
        X = _rows(rng, conditions, rows)
        _same_bits(forest, booster, X)
        _same_contributions(forest, booster, X)


def test_trees_pruned_after_training_give_xgboosts_bits():
    """The prune updater leaves deleted nodes in the arrays (split index 2**31 - 1): only
    the nodes reachable from the root are read."""
    booster = _train({"max_depth": 6, "min_child_weight": 0}, 10, seed=11)
    dtrain = xgb.DMatrix(
        np.random.default_rng(11).normal(size=(600, WIDTH)).astype(np.float32),
        np.random.default_rng(12).integers(0, 2, size=600),
    )
    prune = {
        "objective": "binary:logistic",
        "process_type": "update",
        "updater": "prune",
        "gamma": 3.0,
        "max_depth": 6,
    }
    with pytest.warns(UserWarning, match="updater"):
        pruned = xgb.train(prune, dtrain, 10, xgb_model=booster)
    model = json.loads(pruned.save_raw("json"))["learner"]["gradient_booster"]["model"]
    assert sum(int(t["tree_param"]["num_deleted"]) for t in model["trees"]) > 0
    forest = forest_of(pruned)
    conditions = _split_conditions(pruned, WIDTH)
    rng = np.random.default_rng(13)
    for rows in ROWS:
        X = _rows(rng, conditions, rows)
        _same_bits(forest, pruned, X)
        _same_contributions(forest, pruned, X)


def test_a_tree_by_hand_splits_as_xgboost_documents():
    """One stump on feature 0 at 1.0, missing to the left; leaves -2 and 3, base score 0.5
    (margin 0): below the condition left, at or above it (and +inf) right, NaN left."""
    forest = Forest(
        "5E-1", 2, [([1, -1, -1], [2, -1, -1], [0, 0, 0], ["1E0", "-2E0", "3E0"], [1, 0, 0])]
    )
    X = np.array(
        [
            [0.5, 9],
            [1.0, 9],
            [np.inf, 9],
            [-np.inf, 9],
            [np.nan, 9],
            [np.nextafter(np.float32(1), np.float32(0)), 9],
        ],
        dtype=np.float32,
    )
    left, right = 1 / (np.exp(np.float32(2)) + 1), 1 / (np.exp(np.float32(-3)) + 1)
    np.testing.assert_allclose(
        _native(forest, X), [left, right, right, left, left, left], rtol=1e-6
    )


@pytest.mark.parametrize(
    ("trees", "message"),
    [
        ([], "no trees"),
        ([([], [], [], [], [])], "empty"),
        ([([1, -1], [2, -1, -1], [0, 0, 0], ["1", "0", "0"], [0, 0, 0])], "lengths"),
        ([([2, -1, -1], [1, -1, -1], [0, 0, 0], ["1", "0", "0"], [0, 0, 0])], "next pair"),
        ([([0, -1, -1], [1, -1, -1], [0, 0, 0], ["1", "0", "0"], [0, 0, 0])], "next pair"),
        ([([1, -1], [2, -1], [0, 0], ["1", "0"], [0, 0])], "next pair"),
        ([([1, -1, -1], [2, -1, -1], [5, 0, 0], ["1", "0", "0"], [0, 0, 0])], "feature 5"),
        (
            [
                ([1, -1, 3, -1, -1], [2, -1, 4, -1, -1], [0] * 5, ["1"] * 5, [0] * 5),
                ([1, 3, -1, -1, -1], [2, 4, -1, -1, -1], [0, 9, 0, 0, 0], ["1"] * 5, [0] * 5),
            ],
            "tree 1, node 1: feature 9",
        ),
        ([([1, -1, -1], [2, -1, -1], [0, 0, 0], ["1", "x", "0"], [0, 0, 0])], "not a number"),
    ],
)
def test_the_native_side_refuses_trees_it_cannot_walk(trees, message):
    with pytest.raises(ValueError, match=message):
        Forest("5E-1", 2, trees)


def test_a_node_with_two_parents_is_refused():
    """Node 3 a child of node 1 and of node 2: a walk's depth is then not the tree's."""
    shared = ([1, 3, 3, -1, -1], [2, 4, 4, -1, -1], [0] * 5, ["1"] * 5, [0] * 5)
    with pytest.raises(ValueError, match="child of another node"):
        Forest("5E-1", 2, [shared])


@pytest.mark.parametrize("base_score", ["-1E-1", "1.5E0", "NaN", "inf", "half"])
def test_a_base_score_outside_0_1_is_refused(base_score):
    stump = ([1, -1, -1], [2, -1, -1], [0, 0, 0], ["1", "0", "0"], [0, 0, 0])
    with pytest.raises(ValueError, match="base_score"):
        Forest(base_score, 2, [stump])


def test_contributions_of_a_tree_by_hand_follow_the_node_means():
    """One split on feature 0 at 1.0 (missing left), leaves -2 (hessian 1) and 3 (hessian
    4), base score 0.5 (margin 0): the root's mean (-2 + 12) / 5 = 2 is the bias; a row going
    left moves feature 0 by -2 - 2, one going right by 3 - 2; feature 1 is never split on."""
    stump = ([1, -1, -1], [2, -1, -1], [0, 0, 0], ["1E0", "-2E0", "3E0"], [1, 0, 0])
    forest = Forest("5E-1", 2, [stump], [["5E0", "1E0", "4E0"]])
    X = np.array([[0.5, 9], [1.0, 9], [np.nan, 9]], dtype=np.float32)
    out = np.empty((3, 3), np.float32)
    forest.contributions(X, out)
    assert out.tolist() == [[-4.0, 0.0, 2.0], [1.0, 0.0, 2.0], [-4.0, 0.0, 2.0]]


def test_contributions_refuse_infinities_and_a_forest_without_hessians():
    """A row holding ±inf is refused (XGBoost refuses such a DMatrix; ``LoadedModel`` then
    asks XGBoost, which raises as before), and so is a forest made without ``sum_hessians``;
    ``sum_hessians`` must hold one list a tree, each as long as its node arrays."""
    booster = _train({"max_depth": 2}, 3, seed=1)
    forest = forest_of(booster)
    X = np.zeros((2, WIDTH), dtype=np.float32)
    out = np.full((2, WIDTH + 1), 7.0, np.float32)
    for infinity in (np.inf, -np.inf):
        X[1, 2] = infinity
        with pytest.raises(ValueError, match="infinity"):
            forest.contributions(X, out)
        assert (out == 7.0).all()
    names = [f"f{j}" for j in range(WIDTH)]
    with pytest.raises(xgb.core.XGBoostError, match="inf"):
        LoadedModel("v", booster, {"feature_names": names}).contributions(X)
    stump = ([1, -1, -1], [2, -1, -1], [0, 0, 0], ["1", "0", "0"], [0, 0, 0])
    with pytest.raises(ValueError, match="without sum_hessians"):
        Forest("5E-1", 2, [stump]).contributions(np.zeros((1, 2), np.float32),
                                                 np.empty((1, 3), np.float32))  # fmt: skip
    with pytest.raises(ValueError, match="one list a tree"):
        Forest("5E-1", 2, [stump], [])
    with pytest.raises(ValueError, match="lengths"):
        Forest("5E-1", 2, [stump], [["1", "1"]])
    with pytest.raises(ValueError, match='node 1: sum_hessian "x" is not a number'):
        Forest("5E-1", 2, [stump], [["1", "x", "1"]])
    for bad_out in (np.empty((2, WIDTH), np.float32), np.empty(2 * WIDTH + 2, np.float32)):
        with pytest.raises(ValueError, match="one row of 7 a row"):
            forest.contributions(np.zeros((2, WIDTH), np.float32), bad_out)


def test_predict_checks_its_buffers():
    forest = forest_of(_train({"max_depth": 2}, 3, seed=1))
    X = np.zeros((4, WIDTH), dtype=np.float32)
    for bad_x in (X[:, :-1].copy(), np.asfortranarray(X), X[:, ::2]):
        with pytest.raises(ValueError, match="C-contiguous float32 matrix 6 wide"):
            forest.predict(bad_x, np.empty(4, np.float32))
    for bad_out in (np.empty(3, np.float32), np.empty((4, 1), np.float32)):
        with pytest.raises(ValueError, match="one per row"):
            forest.predict(X, bad_out)
    frozen = np.empty(4, np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        forest.predict(X, frozen)
    with pytest.raises(BufferError):
        forest.predict(X.astype(np.float64), np.empty(4, np.float32))


def _categorical() -> xgb.Booster:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, WIDTH)).astype(np.float32)
    X[:, 0] = rng.integers(0, 5, size=300)
    y = (X[:, 0] > 2).astype(int)
    dtrain = xgb.DMatrix(X, y, feature_types=["c"] + ["q"] * (WIDTH - 1), enable_categorical=True)
    params = {"objective": "binary:logistic", "tree_method": "hist", "max_cat_to_onehot": 1}
    return xgb.train(params, dtrain, 5)


REFUSED = {
    "categorical": (_categorical, "categorical"),
    "dart": (
        lambda: _train({"booster": "dart", "rate_drop": 0.3, "max_depth": 3}, 10, 4),
        "booster is 'dart'",
    ),
    "multiclass": (
        lambda: _train({"objective": "multi:softprob", "num_class": 3}, 5, 5),
        "objective is 'multi:softprob'",
    ),
    "squared error": (
        lambda: _train({"objective": "reg:squarederror"}, 5, 6),
        "objective is 'reg:squarederror'",
    ),
    "logit raw": (
        lambda: _train({"objective": "binary:logitraw"}, 5, 7),
        "objective is 'binary:logitraw'",
    ),
    "random forest": (
        lambda: _train({"num_parallel_tree": 3, "subsample": 0.8}, 3, 8),
        "more than one tree a round",
    ),
}


@pytest.mark.parametrize("kind", REFUSED)
def test_other_models_are_refused_and_scored_by_xgboost(kind):
    """Refused with the reason, and ``LoadedModel.predict`` gives what XGBoost gives, as it
    did before (a multi-output model: the same error as before)."""
    make, reason = REFUSED[kind]
    booster = make()
    with pytest.raises(NotNative, match=reason):
        forest_of(booster)
    names = [f"f{j}" for j in range(WIDTH)]
    model = LoadedModel("v", booster, {"feature_names": names})
    assert model.forest is None and reason in (model.not_native or "")
    rng = np.random.default_rng(9)
    X = rng.normal(size=(10, WIDTH)).astype(np.float32)
    X[:, 0] = rng.integers(0, 5, size=10)
    X[0, 1] = np.nan
    if kind == "multiclass":
        with pytest.raises(ValueError, match="one prediction per row"):
            model.predict(X)
        return
    expected = booster.inplace_predict(X, validate_features=False)
    assert model.predict(X).tobytes() == expected.tobytes()


def test_a_model_from_another_xgboost_is_refused(monkeypatch):
    """The arithmetic was checked against XGBoost 3.2's source; under another version the
    model is scored by XGBoost until it is checked again."""
    monkeypatch.setattr(models.forest, "XGBOOST_VERSION", (3, 3))
    with pytest.raises(NotNative, match=r"xgboost version is \(3, 2\), not \(3, 3\)"):
        forest_of(_train({"max_depth": 2}, 3, seed=1))


class _Document:
    """A booster whose JSON model is ``text``."""

    def __init__(self, text: str):
        self.text = text

    def save_raw(self, raw_format: str) -> bytes:
        assert raw_format == "json"
        return self.text.encode()

    def num_features(self) -> int:
        return WIDTH


def test_a_model_document_it_does_not_know_is_refused():
    """Keys missing, or of another type, or trees the native side cannot walk: refused, with
    the reader's error, never raised to the loader."""
    booster = _train({"max_depth": 2}, 3, seed=1)
    model = json.loads(booster.save_raw("json"))
    tree = model["learner"]["gradient_booster"]["model"]["trees"][0]
    documents = {"KeyError: 'learner'": {"version": [3, 2, 0]}}
    tree["left_children"][0] = "one"
    documents["TypeError"] = model
    for reason, document in documents.items():
        with pytest.raises(NotNative, match=reason):
            forest_of(_Document(json.dumps(document)))
    tree["left_children"][0] = 2
    with pytest.raises(NotNative, match="ValueError: tree 0, node 0: children 2, 2"):
        forest_of(_Document(json.dumps(model)))
