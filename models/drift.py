"""Feature drift: PSI and KL per feature between the training distribution stored with a
model and a sliding window of live feature vectors.

A distribution is ``{"edges": [...], "freq": [...], "missing": float}``: ``edges`` are the
distinct training quantiles e0 < ... < ek (e0 the minimum, ek the maximum), the bins are
``(-inf, e0], (e0, e1], ..., (ek, +inf)`` (so a value heavy at its minimum, like the -1 of a
missing feature, and a feature with few distinct values each get their own bins, and live
values beyond the training range land in the last bin), ``freq`` their shares and
``missing`` the share of NaN values. Emitting metrics or security events is the caller's job.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

EPSILON = 1e-4  # share given to an empty bin, so PSI and KL stay finite
PSI_ALERT = 0.15


def histogram(values: np.ndarray, bins: int = 10) -> dict:
    """The distribution of one feature's training values, by quantile bins."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return {"edges": [], "freq": [], "missing": 1.0}
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)))
    dist = {"edges": [float(e) for e in edges], "freq": [], "missing": 0.0}
    dist["freq"], dist["missing"] = shares(dist, values)
    return dist


def shares(dist: dict, values: np.ndarray) -> tuple[list[float], float]:
    """Bin ``values`` with the bins of ``dist``: (share per bin, share missing)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return [0.0] * (len(dist["edges"]) + 1), 0.0
    missing = np.isnan(values)
    edges = np.asarray(dist["edges"])
    counts = np.bincount(
        np.searchsorted(edges, values[~missing], side="left"), minlength=len(edges) + 1
    )
    return [float(c) / values.size for c in counts], float(missing.mean())


def training_distribution(X: np.ndarray, names: Sequence[str], bins: int = 10) -> dict[str, dict]:
    return {name: histogram(X[:, j], bins) for j, name in enumerate(names)}


def _smoothed(freq: Sequence[float], missing: float) -> np.ndarray:
    p = np.asarray([*freq, missing], dtype=np.float64) + EPSILON
    return p / p.sum()


def psi_kl(expected: dict, values: np.ndarray) -> tuple[float, float]:
    """(PSI, KL(live || training)) of ``values`` against the training ``expected``."""
    live_freq, live_missing = shares(expected, values)
    e = _smoothed(expected["freq"] or [0.0], expected["missing"])
    a = _smoothed(live_freq, live_missing)
    psi = float(np.sum((a - e) * np.log(a / e)))
    kl = float(np.sum(a * np.log(a / e)))
    return psi, kl


class DriftMonitor:
    """PSI and KL of a sliding window of the last ``window`` feature vectors, per feature."""

    def __init__(
        self,
        distributions: dict[str, dict],
        feature_names: Sequence[str],
        window: int = 5000,
        threshold: float = PSI_ALERT,
    ):
        self.distributions = distributions
        self.feature_names = list(feature_names)
        self.threshold = threshold
        self._rows: deque[np.ndarray] = deque(maxlen=window)

    @classmethod
    def for_model(cls, model, window: int = 5000) -> DriftMonitor:
        """From a ``LoadedModel`` (its metadata holds the training distributions)."""
        return cls(model.metadata["distributions"], model.feature_names, window)

    def observe(self, batch: np.ndarray) -> None:
        """Add live feature vectors (rows in ``feature_names`` order)."""
        self._rows.extend(np.atleast_2d(np.asarray(batch, dtype=np.float64)))

    def __len__(self) -> int:
        return len(self._rows)

    def report(self) -> dict[str, dict[str, float]]:
        if not self._rows:
            return {}
        window = np.vstack(self._rows)
        out = {}
        for j, name in enumerate(self.feature_names):
            psi, kl = psi_kl(self.distributions[name], window[:, j])
            out[name] = {"psi": psi, "kl": kl}
        return out

    def drifted(self, report: dict[str, dict[str, float]] | None = None) -> list[str]:
        """Features whose PSI is over the threshold, worst first."""
        report = self.report() if report is None else report
        over = [(v["psi"], k) for k, v in report.items() if v["psi"] > self.threshold]
        return [k for _, k in sorted(over, reverse=True)]


def drift_event(feature: str, psi: float, kl: float, model_version: str, at) -> dict:
    """A ``model_drift`` SecurityEvent (schemas/security_event.avsc) for one feature."""
    return {
        "event_id": f"model_drift_{model_version}_{feature}_{int(at.timestamp()) // 3600}",
        "occurred_at": at,
        "kind": "model_drift",
        "severity": "MEDIUM",
        "source": "scoring",
        "ip": None,
        "wallet": None,
        "user_id": None,
        "purchase_id": None,
        "details": {"feature": feature, "psi": f"{psi:.4f}", "kl": f"{kl:.4f}",
                    "model_version": model_version, "threshold": f"{PSI_ALERT}"},
    }
