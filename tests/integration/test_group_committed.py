"""``Consumer.group_committed`` (streams/faust_compat.py), the guard's reader of the group's
committed offset on a real broker: 0 while the group has committed nothing (it reads from the
earliest offset), then what was committed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from confluent_kafka import Consumer as ConfluentConsumer
from confluent_kafka import TopicPartition
from faust.types import TP

from infra import topics
from streams.faust_compat import Consumer
from tests.conftest import app_id

pytestmark = pytest.mark.integration


def test_the_groups_committed_offset_is_read_from_the_broker(settings) -> None:
    group = app_id(settings)
    name = topics.full_name(topics.PURCHASES, settings.kafka.topic_prefix)
    consumer = Consumer.__new__(Consumer)
    consumer.app = SimpleNamespace(conf=SimpleNamespace(id=group))
    consumer._group_offsets = None
    try:
        assert consumer.group_committed(TP(name, 2)) == 0
        committer = ConfluentConsumer(settings.kafka.consumer_conf(group))
        try:
            committer.commit(offsets=[TopicPartition(name, 2, 17)], asynchronous=False)
        finally:
            committer.close()
        assert consumer.group_committed(TP(name, 2)) == 17
        assert consumer.group_committed(TP(name, 1)) == 0
    finally:
        if consumer._group_offsets is not None:
            consumer._group_offsets.close()
