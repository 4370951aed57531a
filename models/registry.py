"""Versioned model artifacts: XGBoost's native UBJSON (never pickle) plus metadata.json.

Layout of the registry directory (default ``models/registry/``, or ``$SENTINEL_MODEL_DIR``)::

    <version>/model.ubj        Booster.save_model
    <version>/metadata.json    version, features, fingerprint, metrics, thresholds, ...
    <version>/holdout.npz      the held-out window's rows (features, labels), for comparisons
    champion.json              {"champion": version, "challenger": version | null}

Loading checks the artifact's hash and its ordered feature list against the scorer's
(``processors.features.FEATURE_NAMES``) and refuses a mismatch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import xgboost as xgb

from models.loaded import LoadedModel, ModelLoadError, ModelMismatchError

__all__ = [
    "LoadedModel",
    "ModelLoadError",
    "ModelMismatchError",
    "ModelRegistry",
    "UnknownModelError",
    "fingerprint",
    "list_models",
    "load_model",
    "promote",
    "registry_dir",
    "show",
]

MODEL_FILE = "model.ubj"
METADATA_FILE = "metadata.json"
POINTER_FILE = "champion.json"
WINDOW_FILE = "holdout.npz"  # the held-out rows a candidate is compared on (models/champion.py)
ROLES = ("champion", "challenger")
DEFAULT_DIR = Path(__file__).resolve().parent / "registry"


class UnknownModelError(LookupError):
    """No such version in the registry (or no champion promoted yet)."""


def registry_dir() -> Path:
    """``$SENTINEL_MODEL_DIR`` when set, else ``models/registry/`` in the repository."""
    return Path(os.environ.get("SENTINEL_MODEL_DIR") or DEFAULT_DIR)


def fingerprint(X: np.ndarray, y: np.ndarray | None = None) -> str:
    """sha256 of the training matrix (float32, C order) and labels."""
    digest = hashlib.sha256(np.ascontiguousarray(X, dtype=np.float32).tobytes())
    if y is not None:
        digest.update(np.ascontiguousarray(y, dtype=np.int8).tobytes())
    return digest.hexdigest()


def code_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _write_json(path: Path, data: dict) -> None:
    """Atomically: a reader sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
    tmp.replace(path)


class ModelRegistry:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else registry_dir()

    # -- writing ---------------------------------------------------------------------------

    def save(self, booster: xgb.Booster, metadata: dict, window=None) -> str:
        """Store a trained booster with its metadata and, when given, the rows of its
        held-out window (a ``Dataset``, kept as ``holdout.npz`` for the promotion gate);
        returns the new version."""
        names = list(metadata["feature_names"])
        if booster.feature_names is not None and list(booster.feature_names) != names:
            raise ModelMismatchError("booster feature names differ from the metadata's")
        created = datetime.now(UTC)
        self.root.mkdir(parents=True, exist_ok=True)
        version = self._new_version(created, metadata)
        staging = self.root / f".staging-{version}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        booster.save_model(staging / MODEL_FILE)
        if window is not None:
            window.save(staging / WINDOW_FILE)
        meta = {
            "created_at": created.isoformat(),
            "code_revision": code_revision(),
            "feature_types": ["float"] * len(names),
            "format": "xgboost-ubj",
            "xgboost_version": xgb.__version__,
            **metadata,
            "version": version,
            "model_sha256": hashlib.sha256((staging / MODEL_FILE).read_bytes()).hexdigest(),
        }
        _write_json(staging / METADATA_FILE, meta)
        if (self.root / version).exists():
            shutil.rmtree(staging)
            raise FileExistsError(f"model version {version} already exists in {self.root}")
        staging.rename(self.root / version)
        return version

    def _new_version(self, created: datetime, metadata: dict) -> str:
        if metadata.get("version"):
            return str(metadata["version"])
        base = f"{created:%Y%m%dT%H%M%SZ}-{metadata.get('training_fingerprint', '0' * 8)[:8]}"
        version, n = base, 1
        while (self.root / version).exists():
            n += 1
            version = f"{base}-{n}"
        return version

    def promote(self, version: str, role: str = "champion") -> dict:
        """Point ``role`` (champion or challenger) at ``version``; returns the new pointer."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        self.metadata(version)  # exists and is readable
        pointer = self.pointer()
        pointer[role] = version
        if role == "champion" and pointer.get("challenger") == version:
            pointer["challenger"] = None
        pointer["updated_at"] = datetime.now(UTC).isoformat()
        _write_json(self.root / POINTER_FILE, pointer)
        return pointer

    def clear_challenger(self) -> dict:
        pointer = self.pointer()
        pointer["challenger"] = None
        pointer["updated_at"] = datetime.now(UTC).isoformat()
        _write_json(self.root / POINTER_FILE, pointer)
        return pointer

    # -- reading ---------------------------------------------------------------------------

    @property
    def pointer_path(self) -> Path:
        return self.root / POINTER_FILE

    def pointer(self) -> dict:
        try:
            return json.loads(self.pointer_path.read_text())
        except FileNotFoundError:
            return {"champion": None, "challenger": None}
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"unreadable champion pointer {self.pointer_path}: {exc}") from exc

    def versions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / METADATA_FILE).is_file())

    def metadata(self, version: str) -> dict:
        path = self.root / version / METADATA_FILE
        if not path.is_file():
            raise UnknownModelError(f"no model version {version!r} in {self.root}")
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"model {version}: unreadable {path}: {exc}") from exc

    def list_models(self) -> list[dict]:
        pointer = self.pointer()
        rows = []
        for version in self.versions():
            meta = self.metadata(version)
            holdout = meta.get("metrics", {}).get("holdout", {})
            rows.append(
                {
                    "version": version,
                    "created_at": meta.get("created_at"),
                    "role": next((r for r in ROLES if pointer.get(r) == version), ""),
                    "auc_roc": holdout.get("auc_roc"),
                    "recall_at_fpr_2pct": holdout.get("recall_at_fpr_2pct"),
                    "n_features": len(meta.get("feature_names", [])),
                }
            )
        return rows

    def show(self, version: str) -> dict:
        """The metadata without the bulky per-feature distributions."""
        meta = self.metadata(version)
        meta["distributions"] = f"{len(meta.get('distributions', {}))} features"
        return meta

    def resolve(self, version: str | None = None, role: str = "champion") -> str:
        if version:
            return version
        chosen = self.pointer().get(role)
        if not chosen:
            raise UnknownModelError(f"no {role} promoted in {self.root}")
        return chosen

    def load(
        self, version: str | None = None, *, expected_features: Sequence[str] | None = None
    ) -> LoadedModel:
        """Load ``version`` (the champion when None), checked against the scorer's features."""
        version = self.resolve(version)
        meta = self.metadata(version)
        raw = self._model_bytes(version, meta)
        if expected_features is None:
            from processors.features import FEATURE_NAMES

            expected_features = FEATURE_NAMES
        return LoadedModel.from_bytes(version, raw, meta, list(expected_features))

    def _model_bytes(self, version: str, meta: dict) -> bytearray:
        path = self.root / version / MODEL_FILE
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"model {version}: cannot read {path}: {exc}") from exc
        # XGBoost's UBJSON reader can crash the process on damaged bytes: never hand it an
        # artifact whose hash has not been checked.
        expected = meta.get("model_sha256")
        if not expected:
            raise ModelLoadError(
                f"model {version}: metadata has no model_sha256, refusing an unverified artifact"
            )
        if hashlib.sha256(raw).hexdigest() != expected:
            raise ModelLoadError(
                f"model {version}: {path} is corrupt (sha256 differs from metadata)"
            )
        return bytearray(raw)


def load_model(version: str | None = None, root: str | Path | None = None) -> LoadedModel:
    return ModelRegistry(root).load(version)


def promote(version: str, role: str = "champion", root: str | Path | None = None) -> dict:
    return ModelRegistry(root).promote(version, role)


def list_models(root: str | Path | None = None) -> list[dict]:
    return ModelRegistry(root).list_models()


def show(version: str, root: str | Path | None = None) -> dict:
    return ModelRegistry(root).show(version)
