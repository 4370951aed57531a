"""A booster's trees in the native predictor (``processors._native.Forest``), or a refusal.

The native predictor does what XGBoost 3.2's CPU predictor does for one kind of model, the
kind we train: ``gbtree``, ``binary:logistic``, one output, numeric splits
(``processors/native/src/trees.rs`` says how, and why bit for bit): its probabilities, and its
Saabas contributions (``approx_contribs``). ``forest_of`` reads the
booster's own JSON model (``save_raw("json")``, never a pickle) and raises ``NotNative`` for
any other model, which ``LoadedModel`` then scores with XGBoost as before. Reading the
champion (300 trees) costs ~60-90 ms a load, most of it ``json.loads`` of its 1.3 MB.
"""

from __future__ import annotations

import json

import xgboost as xgb

from processors._native import Forest

# The xgboost whose predictor trees.rs follows. The JSON names the one that wrote it, the one
# running: under another, models are scored by XGBoost until trees.rs is checked against it.
XGBOOST_VERSION = (3, 2)


class NotNative(ValueError):
    """A model the native predictor does not score as XGBoost does; the reason is the text."""


def forest_of(booster: xgb.Booster) -> Forest:
    """The booster's trees as a ``Forest``, or ``NotNative`` saying why not."""
    # parse_float=str: each number as XGBoost wrote it (its float32, shortest form), for the
    # native side to read straight to float32 (a Python float would round it twice)
    model = json.loads(booster.save_raw("json"), parse_float=str)
    try:
        return _forest(model, booster.num_features())
    except NotNative:
        raise
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        # a document this reader does not know, or trees the native side cannot walk
        raise NotNative(f"{type(exc).__name__}: {exc}") from exc


def _forest(model: dict, features: int) -> Forest:
    learner = model["learner"]
    param = learner["learner_model_param"]
    gbm = learner["gradient_booster"]
    checks = {
        "xgboost version": (tuple(model["version"][:2]), XGBOOST_VERSION),
        "objective": (learner["objective"]["name"], "binary:logistic"),
        "booster": (gbm["name"], "gbtree"),
        "num_class": (param["num_class"], "0"),
        "num_target": (param.get("num_target", "1"), "1"),
    }
    for what, (got, expected) in checks.items():
        if got != expected:
            raise NotNative(f"{what} is {got!r}, not {expected!r}")
    trees = gbm["model"]["trees"]
    if gbm["model"]["gbtree_model_param"]["num_parallel_tree"] != "1":
        raise NotNative("more than one tree a round")
    if any(group != 0 for group in gbm["model"]["tree_info"]):
        raise NotNative("more than one output group")
    base_score = json.loads(param["base_score"], parse_float=str)
    if not (isinstance(base_score, list) and len(base_score) == 1):
        raise NotNative(f"base_score {param['base_score']!r} is not one value")
    arrays = [_tree_arrays(i, tree) for i, tree in enumerate(trees)]
    # each node's sum of hessians, for the contributions (``Forest.contributions``)
    hessians = [[str(h) for h in tree["sum_hessian"]] for tree in trees]
    return Forest(str(base_score[0]), features, arrays, hessians)


def _tree_arrays(i: int, tree: dict) -> tuple[list, list, list, list, list]:
    if tree["tree_param"]["size_leaf_vector"] != "1":
        raise NotNative(f"tree {i} has vector leaves")
    if any(tree["split_type"]) or tree["categories"]:
        raise NotNative(f"tree {i} has categorical splits")
    return (
        tree["left_children"],
        tree["right_children"],
        tree["split_indices"],
        [str(c) for c in tree["split_conditions"]],  # an integer-looking one came as an int
        tree["default_left"],
    )
