"""The label agent: labels → fraud marks on the entities their purchases used.

``sentinel sink marks`` reads ``sentinel.labels.v1``, looks each labelled purchase up in
PostgreSQL (the system of record: wallet, account, device, card fingerprint), joins them with
``processors.marks.mark_record`` and publishes the result to ``sentinel.fraud-marks.v1``
(compacted, keyed by purchase id), which every worker follows (``streams/marks_follower.py``).
A correction is just a later label: its mark record replaces the earlier one downstream.

Delivery: at least once; the marks are keyed and applied idempotently (the latest label of a
purchase wins), so a redelivered batch changes nothing. A label whose purchase is not in
PostgreSQL is dead-lettered with that reason (``UnknownPurchaseError``); the database being
down is retried.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import psycopg
from confluent_kafka import Producer

from infra import topics
from infra.settings import Settings
from processors.marks import mark_record
from sinks.base import BatchSink, Record, SinkRecordError, SinkUnavailableError
from sinks.postgres import CONNECT_OPTIONS, wrap_postgres_error

PURCHASES_SQL = (
    "SELECT DISTINCT ON (purchase_id) purchase_id, occurred_at, wallet, user_id, device_id,"
    " card_fingerprint FROM purchases WHERE purchase_id = ANY(%s)")
COLUMNS = ("purchase_id", "occurred_at", "wallet", "user_id", "device_id", "card_fingerprint")


class UnknownPurchaseError(SinkRecordError):
    """A label names a purchase PostgreSQL does not have."""


class MarksSink(BatchSink):
    name = "marks"
    topics = (topics.LABELS,)

    def __init__(self, settings: Settings):
        self.settings = settings
        self.topic = topics.full_name(topics.FRAUD_MARKS, settings.kafka.topic_prefix)
        self.producer: Producer | None = None
        self._conn: psycopg.Connection | None = None
        self._failed: list[str] = []

    def setup(self) -> None:
        self._purchases([])
        self.producer = Producer(self.settings.kafka.producer_conf())

    def close(self) -> None:
        if self.producer is not None:
            self.producer.flush(10)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def write(self, batch: Sequence[Record]) -> None:
        labels = [r.value for r in batch]
        purchases = self._purchases([lb["purchase_id"] for lb in labels])
        missing = [lb["purchase_id"] for lb in labels if lb["purchase_id"] not in purchases]
        if missing:
            raise UnknownPurchaseError(f"no stored purchase {missing[0]!r} for its label")
        assert self.producer is not None
        for label in labels:
            value = orjson.dumps(mark_record(label, purchases[label["purchase_id"]]))
            self.producer.produce(self.topic, value, label["purchase_id"],
                                  on_delivery=self._on_delivery)
        remaining = self.producer.flush(30)
        failed, self._failed = self._failed, []
        if remaining or failed:
            raise SinkUnavailableError(f"marks not acknowledged: {remaining} pending, {failed[:2]}")

    def _on_delivery(self, err, _msg) -> None:
        if err is not None:
            self._failed.append(str(err))

    def _purchases(self, ids: list[str]) -> dict[str, dict]:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self.settings.postgres.dsn, autocommit=True,
                                             **CONNECT_OPTIONS)
            rows = self._conn.execute(PURCHASES_SQL, (ids,)).fetchall()
        except psycopg.Error as exc:
            if self._conn is not None:
                self._conn.close()
            raise wrap_postgres_error(exc) from exc
        return {r[0]: dict(zip(COLUMNS, r, strict=True)) for r in rows}
