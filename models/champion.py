"""Candidate against champion on the same held-out window, and the promotion gate.

Every trained model is registered with the rows of its held-out window (``holdout.npz`` in
its version directory). ``compare_on_window`` scores that window with the candidate and the
current champion and says whether the candidate is worse; ``promotion_check`` is what
``sentinel models promote`` runs before it moves the champion pointer.

Worse means: AUC-ROC lower by more than ``AUC_TOLERANCE`` or recall at 2 % false-positive
rate lower by more than ``RECALL_TOLERANCE`` (both measured on the same rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models import metrics as m
from models.dataset import Dataset
from models.loaded import ModelMismatchError
from models.registry import WINDOW_FILE

AUC_TOLERANCE = 0.002
RECALL_TOLERANCE = 0.01
FRICTION_THRESHOLD = m.POLICY_THRESHOLDS["require_2fa"]


def window_metrics(y: np.ndarray, scores: np.ndarray) -> dict:
    """AUC, recall at 2 % FPR and at each policy threshold, friction on legit rows (share of
    legit purchases the model alone would not approve: score above the 2FA threshold)."""
    y, scores = np.asarray(y).astype(int), np.asarray(scores, dtype=np.float64)
    fraud, legit = y == 1, y == 0
    out: dict = {"rows": int(len(y)), "fraud": int(fraud.sum())}
    if fraud.any() and legit.any():
        ranked = m.ranking(y, scores)
        out |= {k: ranked[k] for k in ("auc_roc", "auc_pr", "recall_at_fpr_2pct")}
    else:
        out |= {"auc_roc": None, "auc_pr": None, "recall_at_fpr_2pct": None}
    out["recall_at_policy"] = {
        name: float(np.mean(scores[fraud] > t)) if fraud.any() else None
        for name, t in m.POLICY_THRESHOLDS.items()
    }
    out["legit_friction"] = float(np.mean(scores[legit] > FRICTION_THRESHOLD)) if legit.any() else None
    return out


def worse_reasons(candidate: dict, champion: dict) -> list[str]:
    """Why ``candidate`` is worse than ``champion`` (empty when it is not)."""
    reasons = []
    for key, tolerance, label in (("auc_roc", AUC_TOLERANCE, "AUC-ROC"),
                                  ("recall_at_fpr_2pct", RECALL_TOLERANCE, "recall at 2 % FPR")):
        mine, theirs = candidate.get(key), champion.get(key)
        if mine is not None and theirs is not None and mine < theirs - tolerance:
            reasons.append(f"{label} {mine:.4f} < champion's {theirs:.4f}")
    return reasons


def _window_span(window: Dataset) -> dict:
    if not len(window):
        return {"rows": 0}
    return {"rows": len(window), "fraud": int(window.y.sum()),
            "from_ms": int(window.times_ms.min()), "to_ms": int(window.times_ms.max())}


def compare_on_window(registry, window: Dataset, candidate_scores: np.ndarray,
                      candidate_version: str | None = None) -> dict:
    """The candidate's scores on ``window`` against the current champion's on the same rows.

    ``comparable`` is False (with ``note``) when there is no champion, the champion is the
    candidate, it was trained on other features, or the window lacks fraud or legit rows."""
    champion = registry.pointer().get("champion")
    result = {"window": _window_span(window), "champion": champion,
              "candidate": window_metrics(window.y, candidate_scores),
              "comparable": False, "worse": False, "reasons": []}
    note = _not_comparable(registry, champion, candidate_version, window)
    if note is None:
        try:
            model = registry.load(champion, expected_features=window.feature_names)
        except ModelMismatchError as exc:
            note = f"champion {champion} was trained on other features ({exc})"
        else:
            result["champion_metrics"] = window_metrics(window.y, model.predict(window.X))
            result["reasons"] = worse_reasons(result["candidate"], result["champion_metrics"])
            result["comparable"], result["worse"] = True, bool(result["reasons"])
    if note is not None:
        result["note"] = note
    return result


def _not_comparable(registry, champion, candidate_version, window: Dataset) -> str | None:
    if not champion:
        return f"no champion in {registry.root}"
    if champion == candidate_version:
        return f"{champion} is already the champion"
    if not len(window) or window.y.min() == window.y.max():
        return "the held-out window needs both fraud and legit purchases"
    return None


def load_window(registry, version: str) -> Dataset | None:
    path = Path(registry.root) / version / WINDOW_FILE
    return Dataset.load(path) if path.is_file() else None


@dataclass(frozen=True)
class PromotionCheck:
    allowed: bool
    message: str
    comparison: dict | None = None


def promotion_check(registry, version: str) -> PromotionCheck:
    """May ``version`` replace the champion? Refused when it is worse on its held-out window."""
    window = load_window(registry, version)
    if window is None:
        return PromotionCheck(True, f"{version} has no held-out window stored: not compared")
    candidate = registry.load(version, expected_features=window.feature_names)
    comparison = compare_on_window(registry, window, candidate.predict(window.X), version)
    if comparison["worse"]:
        why = "; ".join(comparison["reasons"])
        return PromotionCheck(False, (
            f"refusing to promote {version}: worse than champion {comparison['champion']} on "
            f"its held-out window ({comparison['window']['rows']} purchases): {why}. "
            "Use --force to promote anyway."), comparison)
    if not comparison["comparable"]:
        return PromotionCheck(True, f"not compared: {comparison['note']}", comparison)
    return PromotionCheck(True, (
        f"{version} is not worse than champion {comparison['champion']} on its held-out "
        f"window (AUC-ROC {comparison['candidate']['auc_roc']:.4f} vs "
        f"{comparison['champion_metrics']['auc_roc']:.4f})"), comparison)


def promote_if_not_worse(registry, version: str | None, promote: bool, force: bool,
                         comparison: dict, log=print) -> dict:
    """After training: promote when asked, unless ``comparison`` (the new model against the
    champion on its held-out window) says it is worse and ``force`` is not set."""
    if not promote or version is None:
        return {"requested": promote, "promoted": False}
    if comparison["worse"] and not force:
        message = (f"not promoted: {version} is worse than champion {comparison['champion']} "
                   f"on its held-out window: {'; '.join(comparison['reasons'])} "
                   "(--force to promote anyway)")
        log(message)
        return {"requested": True, "promoted": False, "message": message}
    registry.promote(version)
    return {"requested": True, "promoted": True, "forced": bool(comparison["worse"])}
