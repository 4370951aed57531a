"""A loaded model: a checked XGBoost booster that scores feature batches in one call (its trees
walked natively when ``models/forest.py`` can, else by XGBoost)."""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

import numpy as np
import xgboost as xgb
from xgboost.core import _LIB, _check_call, c_bst_ulong, make_jcargs

from models.forest import NotNative, forest_of
from processors._native import Forest


class ModelLoadError(RuntimeError):
    """A model artifact that cannot be read: missing, corrupt or not an XGBoost model."""


class ModelMismatchError(ModelLoadError):
    """The model's ordered feature list differs from the scorer's."""


def _mismatch(version: str, model: Sequence[str], scorer: Sequence[str]) -> str:
    missing = [f for f in scorer if f not in model]
    extra = [f for f in model if f not in scorer]
    detail = []
    if missing:
        detail.append(f"missing from the model: {missing}")
    if extra:
        detail.append(f"unknown to the scorer: {extra}")
    if not detail:
        first = next(i for i, (a, b) in enumerate(zip(model, scorer, strict=True)) if a != b)
        detail.append(
            f"order differs from position {first} ({model[first]!r} vs {scorer[first]!r})"
        )
    return (
        f"model {version} was trained on {len(model)} features, the scorer computes "
        f"{len(scorer)}: "
        + "; ".join(detail)
        + ". Retrain (sentinel train) or load a matching version."
    )


class LoadedModel:
    def __init__(self, version: str, booster: xgb.Booster, metadata: dict):
        self.version = version
        self.booster = booster
        self.metadata = metadata
        self.feature_names: list[str] = list(metadata["feature_names"])
        self.forest: Forest | None = None
        self.not_native: str | None = None  # why ``forest`` is None
        try:
            self.forest = forest_of(booster)
        except NotNative as exc:
            self.not_native = str(exc)

    @classmethod
    def from_bytes(
        cls, version: str, raw: bytearray, metadata: dict, expected_features: Sequence[str]
    ) -> LoadedModel:
        names = list(metadata.get("feature_names") or [])
        if names != list(expected_features):
            raise ModelMismatchError(_mismatch(version, names, list(expected_features)))
        # One thread: batches of a few hundred rows are faster without thread hand-offs, and
        # the worker's other core is busy with Kafka I/O (measured: 1.6 vs 4.5 ms per 500).
        booster = xgb.Booster(params={"nthread": 1})
        try:
            booster.load_model(raw)
        except xgb.core.XGBoostError as exc:
            raise ModelLoadError(f"model {version}: not a readable XGBoost model: {exc}") from exc
        if booster.num_features() != len(names) or (
            booster.feature_names is not None and list(booster.feature_names) != names
        ):
            raise ModelMismatchError(f"model {version}: booster features differ from its metadata")
        return cls(version, booster, metadata)

    @property
    def thresholds(self) -> dict[str, float]:
        return dict(self.metadata.get("thresholds", {}))

    def _matrix(self, X) -> np.ndarray:
        """``X`` as a C-contiguous float32 matrix, its width checked. The calls below skip
        xgboost's feature-name checks (``validate_features=False``) and leave the names off
        the DMatrix: the columns are in the model's order by construction (``from_bytes``
        compared the names), and naming and checking cost a third of a contributions call
        on a few rows (valgrind: 3.2 M instructions for one row with them, 2.0 M without)."""
        X = np.ascontiguousarray(np.atleast_2d(np.asarray(X, dtype=np.float32)))
        if X.shape[1] != len(self.feature_names):
            raise ValueError(
                f"expected {len(self.feature_names)} feature columns, got {X.shape[1]}"
            )
        return X

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Fraud probabilities, one per row, in one call: what ``inplace_predict`` gives, to
        the bit. The trees are walked natively (``self.forest``, ``models/forest.py``):
        XGBoost's own call costs ~200-400 µs however few the rows, then ~9 µs a row (the
        champion, 300 trees: 400 µs for 1 row, 590 for 10), and live batches are a few rows.
        A model the native predictor does not do (``self.not_native`` says why) is scored by
        XGBoost (``predict_dense``)."""
        X = self._matrix(X)
        if X.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        if self.forest is None:
            return predict_dense(self.booster, X)
        out = np.empty(X.shape[0], dtype=np.float32)
        self.forest.predict(X, out)
        return out

    def contributions(self, X: np.ndarray, exact: bool = False) -> np.ndarray:
        """Per-feature contributions to the margin: shape (rows, features + 1), the last
        column the bias. Live scoring uses Saabas' path attribution (``approx_contribs``,
        ~15x cheaper); ``exact=True`` gives TreeSHAP values, as the training report does
        (``contributions_dense``: what ``Booster.predict`` on a DMatrix gives). Saabas' are
        computed natively (``self.forest``), to the bit what XGBoost gives, without its fixed
        cost of ~300 µs a call (it computes every tree's node means each call); by XGBoost
        for a model the native side does not do, or rows holding ±inf (which it refuses, and
        XGBoost raises for, as before)."""
        X = self._matrix(X)
        if X.shape[0] == 0:
            return np.zeros((0, X.shape[1] + 1), dtype=np.float32)
        if not exact and self.forest is not None:
            out = np.empty((X.shape[0], X.shape[1] + 1), dtype=np.float32)
            try:
                self.forest.contributions(X, out)
            except ValueError:  # infinities (or a forest of another width): XGBoost's
                pass
            else:
                return out
        return contributions_dense(self.booster, X, exact)

    def top_contributions(self, X: np.ndarray, k: int = 5) -> list[dict[str, float]]:
        """Per row, the ``k`` features that pushed the score most (by |contribution|)."""
        contrib = self.contributions(X, exact=True)[:, :-1]
        order = np.argsort(-np.abs(contrib), axis=1)[:, :k]
        return [
            {self.feature_names[j]: float(row[j]) for j in idx}
            for row, idx in zip(contrib, order, strict=True)
        ]

    def __repr__(self) -> str:
        return f"LoadedModel(version={self.version!r}, features={len(self.feature_names)})"


# ``Booster.inplace_predict(X, validate_features=False)``'s arguments, as its JSON config: values
# (type 0), every tree (iterations 0 to 0), NaN as missing, one value per row.
_PREDICT_CONFIG = make_jcargs(
    type=0,
    training=False,
    iteration_begin=0,
    iteration_end=0,
    missing=np.nan,
    strict_shape=False,
    cache_id=0,
)


def predict_dense(booster: xgb.Booster, X: np.ndarray) -> np.ndarray:
    """``booster.inplace_predict(X, validate_features=False)`` for a C-contiguous float32
    matrix of at least one row: the same C call (``XGBoosterPredictFromDense``) with the
    same config, prepared once, and the same copy of its output, without the wrapper's
    input-type dispatch and JSON building (measured on the champion, 300 trees, 1 and 4
    rows: 169 and 252 µs a call against 307 and 382; xgboost 3.2;
    ``tests/unit/test_models_registry.py`` compares the two)."""
    if X.dtype != np.float32 or X.ndim != 2 or not X.flags.c_contiguous or not len(X):
        raise ValueError("predict_dense takes a C-contiguous float32 matrix of rows")
    rows = X.shape[0]
    shape, dims = ctypes.POINTER(c_bst_ulong)(), c_bst_ulong()
    preds = ctypes.POINTER(ctypes.c_float)()
    _check_call(
        _LIB.XGBoosterPredictFromDense(
            booster.handle,
            _interface(X),
            _PREDICT_CONFIG,
            None,  # no base margin
            ctypes.byref(shape),
            ctypes.byref(dims),
            ctypes.byref(preds),
        )
    )
    if dims.value != 1 or shape[0] != rows:  # a multi-output model: not ours
        got = [shape[i] for i in range(dims.value)]
        raise ValueError(f"expected one prediction per row, got shape {got}")
    # the output is xgboost's buffer, reused by the next call: copied, as the wrapper does
    return np.ctypeslib.as_array(preds, shape=(rows,)).copy()


def _interface(X: np.ndarray) -> bytes:
    """``X.__array_interface__`` as the JSON the C API reads (the wrapper json.dumps it)."""
    rows, width = X.shape
    return b'{"data": [%d, false], "shape": [%d, %d], "strides": null, ' \
           b'"typestr": "<f4", "version": 3}' % (X.ctypes.data, rows, width)  # fmt: skip


# ``DMatrix(X, nthread=1)``'s arguments to ``XGDMatrixCreateFromDense``, and
# ``Booster.predict(dm, pred_contribs=True, approx_contribs=..., validate_features=False)``'s
# to ``XGBoosterPredictFromDMatrix``, as their JSON configs (type 2: TreeSHAP, 3: Saabas).
_DMATRIX_CONFIG = make_jcargs(missing=np.nan, nthread=1, data_split_mode=0)
_CONTRIBS_CONFIG = {
    exact: make_jcargs(type=2 if exact else 3, training=False, iteration_begin=0,
                       iteration_end=0, strict_shape=False)
    for exact in (False, True)
}  # fmt: skip


def contributions_dense(booster: xgb.Booster, X: np.ndarray, exact: bool = False) -> np.ndarray:
    """``booster.predict(xgb.DMatrix(X, nthread=1), pred_contribs=True, approx_contribs=not
    exact, validate_features=False)`` for a C-contiguous float32 matrix of at least one row:
    the same two C calls (``XGDMatrixCreateFromDense``, ``XGBoosterPredictFromDMatrix``) with
    the same configs, without the DMatrix class (its backend dispatch, ``set_info`` and
    names) and the wrapper's JSON building (measured on the champion, Saabas, best of 7 x 200
    calls, /tmp/contrib_ab.py: 1 row 342 µs a call against 544, 4 rows 443 against 688;
    ``tests/unit/test_models_registry.py`` compares the two)."""
    if X.dtype != np.float32 or X.ndim != 2 or not X.flags.c_contiguous or not len(X):
        raise ValueError("contributions_dense takes a C-contiguous float32 matrix of rows")
    rows, width = X.shape
    matrix = ctypes.c_void_p()
    _check_call(_LIB.XGDMatrixCreateFromDense(_interface(X), _DMATRIX_CONFIG,
                                              ctypes.byref(matrix)))  # fmt: skip
    try:
        shape, dims = ctypes.POINTER(c_bst_ulong)(), c_bst_ulong()
        preds = ctypes.POINTER(ctypes.c_float)()
        _check_call(
            _LIB.XGBoosterPredictFromDMatrix(
                booster.handle,
                matrix,
                _CONTRIBS_CONFIG[exact],
                ctypes.byref(shape),
                ctypes.byref(dims),
                ctypes.byref(preds),
            )
        )
        if dims.value != 2 or shape[0] != rows or shape[1] != width + 1:  # not ours
            got = [shape[i] for i in range(dims.value)]
            raise ValueError(f"expected {width + 1} contributions per row, got shape {got}")
        # xgboost's buffer, reused by the next call: copied, as the wrapper does
        return np.ctypeslib.as_array(preds, shape=(rows, width + 1)).copy()
    finally:
        _check_call(_LIB.XGDMatrixFree(matrix))
