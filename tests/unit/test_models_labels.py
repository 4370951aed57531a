"""What a model trained at a given event time may know about each purchase's outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from models.labels import (
    DAY_MS,
    KNOWN_FRAUD,
    KNOWN_LEGIT,
    LEGIT_BY_DELAY,
    PENDING,
    LabelBook,
    effective_labels,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MS0 = int(T0.timestamp() * 1000)


def label(pid: str, days: float, fraud: bool, source: str = "CHARGEBACK") -> dict:
    return {"purchase_id": pid, "occurred_at": T0 + timedelta(days=days), "is_fraud": fraud,
            "source": source, "pattern": "card_testing" if fraud else None}


def test_a_review_overturning_a_chargeback_wins():
    labels = [label("p1", 10, True), label("p1", 14, False, "MANUAL_REVIEW")]
    book = LabelBook(labels, as_of_ms=MS0 + 20 * DAY_MS, delay_ms=30 * DAY_MS)
    assert book.outcome("p1", MS0).how == KNOWN_LEGIT
    assert book("p1", MS0) == (False, "")


def test_a_correction_after_the_training_time_is_not_seen():
    labels = [label("p1", 10, True), label("p1", 14, False, "MANUAL_REVIEW")]
    book = LabelBook(labels, as_of_ms=MS0 + 12 * DAY_MS, delay_ms=30 * DAY_MS)
    assert book("p1", MS0) == (True, "card_testing")
    assert book.outcome("p1", MS0).how == KNOWN_FRAUD


def test_same_instant_review_beats_chargeback():
    labels = [label("p1", 5, False, "MANUAL_REVIEW"), label("p1", 5, True)]
    assert effective_labels(labels)["p1"]["source"] == "MANUAL_REVIEW"


def test_unlabelled_purchase_is_legit_only_after_the_delay():
    book = LabelBook([], as_of_ms=MS0 + 30 * DAY_MS, delay_ms=30 * DAY_MS)
    assert book("old", MS0) == (False, "")
    assert book("young", MS0 + 1) is None
    assert book.counts == {LEGIT_BY_DELAY: 1, PENDING: 1}


def test_a_label_from_the_future_of_the_training_time_is_ignored():
    book = LabelBook([label("p1", 40, True)], as_of_ms=MS0 + 35 * DAY_MS, delay_ms=30 * DAY_MS)
    # 35 days old with no label known at training time: legit, as far as anyone knew then.
    assert book("p1", MS0) == (False, "")
