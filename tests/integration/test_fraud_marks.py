"""The label agent on real Kafka and PostgreSQL: labels are joined with their stored purchases
into fraud marks on the marks topic, a correction lifts the mark, a label for an unknown
purchase is dead-lettered, and a worker's follower sees the marks."""

from __future__ import annotations

from datetime import timedelta

import pytest

from infra import topics
from infra.settings import PostgresSettings
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from sinks.config import SinkSettings
from sinks.marks import MarksSink
from sinks.postgres import PostgresSink
from sinks.runner import SinkLoop
from sinks.testing import T0, records, running
from streams.marks_follower import MarksFollower
from tests.support.kafka import produce, read_until
from tests.support.records import purchase

pytestmark = pytest.mark.integration


def _label(pid: str, days: float, fraud: bool, source: str = "CHARGEBACK") -> dict:
    return {"purchase_id": pid, "occurred_at": T0 + timedelta(days=days), "is_fraud": fraud,
            "source": source, "pattern": None}


def test_labels_become_marks_and_corrections_lift_them(settings, pg_dsn):
    settings = settings.model_copy(update={"postgres": PostgresSettings(url=pg_dsn)})
    bought = [purchase(n, occurred_at=T0 + timedelta(minutes=n), user_id=f"u-{n}")
              for n in (1, 2)]
    sink = PostgresSink(pg_dsn, (topics.PURCHASES,))
    sink.setup()
    sink.write(records(topics.PURCHASES, bought))
    sink.close()
    labels = [_label("p-1", 12, True), _label("p-2", 12, True),
              _label("p-2", 14, False, "MANUAL_REVIEW"), _label("p-404", 12, True)]
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.LABELS)
    produce(settings, topics.LABELS, [(lb["purchase_id"], codec.encode(lb)) for lb in labels])

    loop = SinkLoop(settings, MarksSink(settings), SinkSettings(backoff_initial_s=0.05))
    with running(loop):
        marks = read_until(settings, topics.FRAUD_MARKS, lambda m: len(m) >= 3)
        dead = read_until(settings, topics.dlq(topics.LABELS), lambda m: len(m) >= 1)
    assert sorted(m.key() for m in marks) == [b"p-1", b"p-2", b"p-2"]
    letter = AvroCodec.for_topic(registry_from_settings(settings),
                                 topics.dlq(topics.LABELS)).decode(dead[0].value())
    assert "p-404" in letter["error_message"]

    follower = MarksFollower(settings)
    try:
        store = follower.current()
        later = int((T0 + timedelta(days=20)).timestamp() * 1000)
        assert store.prior(f"wallet:{bought[0]['wallet']}", later)[0] == 1
        assert store.prior("card:card-1", later)[0] == 1
        assert store.prior("account:u-1", later)[0] == 1
        assert store.prior("device:dev-2", later) == (0, None)  # the review overturned it
    finally:
        follower.close()
