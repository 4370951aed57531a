"""Pure pieces of the sinks: row mapping, JSON, KPI buckets, blocklist normalisation, errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import psycopg
import pytest
import redis

from infra import topics
from sinks.base import RETRYABLE, SinkBackpressureError, SinkRecordError, SinkUnavailableError
from sinks.blocklist import normalise
from sinks.encoding import to_json
from sinks.pg_tables import BY_TOPIC
from sinks.postgres import DEFAULT_TOPICS, PostgresSinkError, wrap_postgres_error
from sinks.redis import kpi_bucket, wrap_redis_error
from sinks.testing import decision
from tests.support.records import purchase

pytestmark = pytest.mark.unit


def test_every_sunk_topic_has_a_table_and_rows_match_columns():
    assert {s.name for s in DEFAULT_TOPICS} == set(BY_TOPIC)
    for table in BY_TOPIC.values():
        assert set(table.key) <= set(table.columns)
    d = BY_TOPIC[topics.DECISIONS.name]
    row = d.row(decision(3))
    assert len(row) == len(d.columns)
    assert dict(zip(d.columns, row, strict=True))["purchase_id"] == "p-3"
    p = BY_TOPIC[topics.PURCHASES.name]
    assert dict(zip(p.columns, p.row(purchase(1)), strict=True))["country"] == "DE"


def test_json_turns_timestamps_into_epoch_ms():
    at = datetime(2026, 11, 1, 12, 0, 0, 123000, tzinfo=UTC)
    # 2026-11-01T12:00:00.123Z
    assert json.loads(to_json({"b": at, "a": [1.5]})) == {"a": [1.5], "b": 1793534400123}
    assert to_json({"b": 1, "a": 2}) == '{"a":2,"b":1}'


def test_kpi_bucket_is_the_utc_minute():
    assert kpi_bucket(datetime(2026, 11, 1, 12, 5, 59, tzinfo=UTC)) == "sentinel:kpi:202611011205"


def test_blocklist_values_are_normalised():
    assert normalise("wallet", " 0xABC ") == "0xabc"
    assert normalise("ip", "2001:DB8:0::1") == "2001:db8::1"
    with pytest.raises(ValueError):
        normalise("ip", "1.2.3")
    with pytest.raises(ValueError):
        normalise("email", "x")


def test_driver_errors_map_to_what_the_loop_should_do():
    assert isinstance(wrap_postgres_error(psycopg.OperationalError("x")), SinkUnavailableError)
    assert isinstance(wrap_postgres_error(psycopg.DataError("x")), SinkRecordError)
    fatal = wrap_postgres_error(psycopg.ProgrammingError("no table"))
    assert isinstance(fatal, PostgresSinkError) and not isinstance(fatal, RETRYABLE)
    assert not isinstance(fatal, SinkRecordError)
    assert isinstance(wrap_redis_error(redis.ConnectionError("x")), SinkUnavailableError)
    oom = wrap_redis_error(redis.ResponseError("OOM command not allowed"))
    assert isinstance(oom, SinkBackpressureError) and oom.retry_after > 0
    assert isinstance(wrap_redis_error(redis.ResponseError("WRONGTYPE x")), SinkRecordError)
