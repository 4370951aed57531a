"""Follow the champion pointer: a running scorer switches models without a restart."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence

from models.loaded import LoadedModel, ModelLoadError
from models.registry import ModelRegistry

log = logging.getLogger(__name__)


class ModelHolder:
    """Holds the champion (and the optional challenger) and reloads them when the pointer file
    changes, looking at it at most once every ``check_every_s`` seconds.

    A bad new champion (corrupt, mismatched) is refused: the holder keeps scoring with the
    model it has and remembers the error in ``last_error``.
    """

    def __init__(
        self,
        registry: ModelRegistry | None = None,
        *,
        check_every_s: float = 5.0,
        expected_features: Sequence[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.registry = registry or ModelRegistry()
        self.check_every_s = check_every_s
        self.expected_features = expected_features
        self.clock = clock
        self.last_error: Exception | None = None
        self._stamp = self._pointer_stamp()
        self._checked = clock()
        self.model: LoadedModel = self._load(self.registry.resolve())
        self.challenger: LoadedModel | None = self._load_challenger()

    def _load(self, version: str) -> LoadedModel:
        return self.registry.load(version, expected_features=self.expected_features)

    def _load_challenger(self) -> LoadedModel | None:
        version = self.registry.pointer().get("challenger")
        if not version:
            return None
        try:
            return self._load(version)
        except (ModelLoadError, LookupError) as exc:
            log.error("challenger %s not loaded: %s", version, exc)
            self.last_error = exc
            return None

    def _pointer_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.registry.pointer_path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_ino, st.st_size)

    def maybe_reload(self) -> bool:
        """Reload when due and the pointer changed; True when the champion or challenger did."""
        now = self.clock()
        if now - self._checked < self.check_every_s:
            return False
        self._checked = now
        stamp = self._pointer_stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        return self.reload()

    def reload(self) -> bool:
        """Follow the pointer now."""
        try:
            pointer = self.registry.pointer()
            champion = pointer.get("champion")
            changed = False
            if champion and champion != self.model.version:
                self.model, changed = self._load(champion), True
                log.info("champion model is now %s", champion)
            if pointer.get("challenger") != (self.challenger and self.challenger.version):
                self.challenger, changed = self._load_challenger(), True
        except (ModelLoadError, LookupError) as exc:
            log.error("model reload refused, keeping %s: %s", self.model.version, exc)
            self.last_error = exc
            return False
        return changed


ChampionWatcher = ModelHolder
