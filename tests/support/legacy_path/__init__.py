"""The per-row decision path as it was before the columnar one (main at 79e0215), kept only
as the reference of ``tests/unit/test_decision_path_equivalence.py``: feature dicts built per
purchase, entity states read from the raw record, the policy, explanations and security events
per row. The shared pieces it did not own are imported from ``processors`` (the state classes,
expiry, rings, money, time, the policy's scalar functions, the rules engine). One later change
of entity retention is mirrored in its ``entity_state``: a show idle past its 7-day windows keeps
its first primary sales for 30 d (``processors.entity_state.sweep_shows``, 2026-12-05).

Do not use outside that test.
"""

from tests.support.legacy_path.decide import decide_batch
from tests.support.legacy_path.features import FeatureEngine, LateEventError

__all__ = ["FeatureEngine", "LateEventError", "decide_batch"]
