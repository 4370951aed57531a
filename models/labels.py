"""What is known about a purchase's outcome at a point in event time.

Labels arrive on ``sentinel.labels.v1`` days or weeks after the purchase (a chargeback, a
manual review). ``LabelBook(labels, as_of_ms, delay_ms)`` answers, for a purchase, what a
model trained at ``as_of_ms`` may know:

- only labels that arrived by ``as_of_ms`` count (a label from the future of the training
  time is not used);
- of those, the latest one wins, so a correction (a review overturning a chargeback) replaces
  the label it corrects; at the same instant a review beats a chargeback;
- a purchase with no label is taken as legit once ``delay_ms`` has passed since it was made
  (nobody complained in time); before that its outcome is unknown and it has no label.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from processors.marks import SOURCE_RANK
from processors.timeutil import to_ms

DAY_MS = 86_400_000
DEFAULT_LABEL_DELAY_DAYS = 30.0

KNOWN_FRAUD, KNOWN_LEGIT, LEGIT_BY_DELAY, PENDING = (
    "fraud", "legit", "legit_by_delay", "pending",
)


@dataclass(frozen=True, slots=True)
class Outcome:
    is_fraud: bool
    pattern: str
    how: str  # KNOWN_FRAUD, KNOWN_LEGIT or LEGIT_BY_DELAY


def effective_labels(labels: Iterable[dict], as_of_ms: int | None = None) -> dict[str, dict]:
    """The latest label per purchase among those that arrived by ``as_of_ms`` (all if None)."""
    latest: dict[str, tuple[tuple[int, int], dict]] = {}
    for label in labels:
        at = to_ms(label["occurred_at"]) or 0
        if as_of_ms is not None and at > as_of_ms:
            continue
        order = (at, SOURCE_RANK.get(str(label.get("source")), 0))
        pid = label["purchase_id"]
        if pid not in latest or order >= latest[pid][0]:
            latest[pid] = (order, label)
    return {pid: label for pid, (_, label) in latest.items()}


@dataclass
class LabelBook:
    labels: Iterable[dict]
    as_of_ms: int
    delay_ms: int = int(DEFAULT_LABEL_DELAY_DAYS * DAY_MS)
    counts: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.latest = effective_labels(self.labels, self.as_of_ms)

    def outcome(self, purchase_id: str, purchase_ms: int) -> Outcome | None:
        """The purchase's outcome as known at ``as_of_ms``, or None while it is unknown."""
        label = self.latest.get(purchase_id)
        if label is not None:
            fraud = bool(label["is_fraud"])
            outcome = Outcome(fraud, (label.get("pattern") or "") if fraud else "",
                              KNOWN_FRAUD if fraud else KNOWN_LEGIT)
        elif purchase_ms + self.delay_ms <= self.as_of_ms:
            outcome = Outcome(False, "", LEGIT_BY_DELAY)
        else:
            self.counts[PENDING] += 1
            return None
        self.counts[outcome.how] += 1
        return outcome

    def __call__(self, purchase_id: str, purchase_ms: int) -> tuple[bool, str] | None:
        """``outcome`` as ``(is_fraud, pattern)``, the shape ``build_dataset`` takes."""
        known = self.outcome(purchase_id, purchase_ms)
        return None if known is None else (known.is_fraud, known.pattern)
