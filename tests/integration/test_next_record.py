"""``Consumer.next_record`` (streams/faust_compat.py) on a real broker: on a topic written in
transactions, each commit leaves a marker that takes an offset and holds no record; the guard
asks for the first record at or after an offset instead of seeking back and waiting out its
patience for each transaction."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from confluent_kafka import Producer
from faust.types import TP

from infra import topics
from streams.faust_compat import Consumer
from tests.conftest import app_id

pytestmark = pytest.mark.integration


def test_the_first_record_after_a_transaction_marker_is_found(settings) -> None:
    name = topics.full_name(topics.CHAIN_TRANSFERS, settings.kafka.topic_prefix)
    producer = Producer(settings.kafka.producer_conf(**{"transactional.id": app_id(settings)}))
    producer.init_transactions(30)
    for values in ((b"a", b"b"), (b"c", b"d")):  # offsets 0-1, marker 2, 3-4, marker 5
        producer.begin_transaction()
        for value in values:
            producer.produce(name, value, b"k", partition=0)
        producer.commit_transaction(30)
    consumer = Consumer.__new__(Consumer)
    consumer.app = SimpleNamespace(conf=SimpleNamespace(id=app_id(settings)))
    consumer._group_offsets = None
    tp = TP(name, 0)
    try:
        assert consumer.next_record(tp, 0) == 0
        assert consumer.next_record(tp, 1) == 1
        assert consumer.next_record(tp, 2) == 3  # the first commit's marker holds no record
        assert consumer.next_record(tp, 4) == 4
        assert consumer.next_record(tp, 5) is None  # the last marker: nothing after it yet
    finally:
        if consumer._group_offsets is not None:
            consumer._group_offsets.close()
