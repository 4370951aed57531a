"""The producer client on a real broker: delivery reports, edge validation, bulk loads."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import wait
from pathlib import Path

import orjson
import pytest

from connectors.base import Delivery, DeliveryFailed, ValidationFailed
from connectors.bench_server import topic_records
from connectors.publisher import Publisher
from infra import cli
from infra.observe import free_port
from infra.settings import KafkaSettings, Settings
from infra.topics import LABELS, PURCHASES
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from tests.support.kafka import read_until
from tests.support.records import recent_purchase

pytestmark = pytest.mark.integration


def test_the_producer_client_canonicalises_like_the_gateway(settings: Settings) -> None:
    with Publisher(settings) as publisher:
        publisher.publish_purchase(recent_purchase(5, purchase_id=f"p-{uuid.uuid4().hex}",
                                                   ip="::ffff:185.220.100.0")).result(30)
        for bad in ({"ip": "fe80::1%eth0"}, {"user_id": "u\u202e1"}, {"device_id": "d\x00"}):
            with pytest.raises(ValidationFailed):
                publisher.publish_purchase(recent_purchase(6, **bad))
    codec = AvroCodec.for_topic(registry_from_settings(settings), PURCHASES)
    [message] = read_until(settings, PURCHASES, lambda ms: len(ms) >= 1)
    assert codec.decode(message.value())["ip"] == "185.220.100.0"


def test_publish_reports_delivery_and_normalises(settings: Settings) -> None:
    record = recent_purchase(1, purchase_id=f"p-{uuid.uuid4().hex}", wallet="0x" + "AB" * 20)
    with Publisher(settings) as publisher:
        delivery = publisher.publish_purchase(record).result(timeout=30)
        label = publisher.publish_label(
            {"purchase_id": record["purchase_id"], "occurred_at": record["occurred_at"],
             "is_fraud": False, "source": "MANUAL_REVIEW"}).result(timeout=30)  # fmt: skip
    assert isinstance(delivery, Delivery) and delivery.record_id == record["purchase_id"]
    assert delivery.key == "0x" + "ab" * 20 and delivery.offset == 0
    assert label.key == record["purchase_id"]
    codec = AvroCodec.for_topic(registry_from_settings(settings), PURCHASES)
    [message] = read_until(settings, PURCHASES, lambda ms: len(ms) >= 1)
    on_topic = codec.decode(message.value())
    assert on_topic["wallet"] == "0x" + "ab" * 20 and on_topic["ingested_at"] is not None
    assert topic_records(settings, LABELS) == 1


def test_invalid_records_raise_before_anything_is_sent(settings: Settings) -> None:
    with Publisher(settings) as publisher:
        with pytest.raises(ValidationFailed) as caught:
            publisher.publish_purchase(recent_purchase(2, quantity=0, currency="???"))
    assert sorted(e.field for e in caught.value.errors) == ["currency", "quantity"]
    assert topic_records(settings, PURCHASES) == 0


def test_unreachable_broker_fails_the_future(settings: Settings) -> None:
    kafka = KafkaSettings(**{**settings.kafka.model_dump(),
                             "bootstrap_servers": f"127.0.0.1:{free_port()}"})  # fmt: skip
    down = settings.model_copy(update={"kafka": kafka})
    with Publisher(down, delivery_timeout_ms=1000) as publisher:
        started = time.monotonic()
        future = publisher.publish_purchase(recent_purchase(3))
        with pytest.raises(DeliveryFailed) as caught:
            future.result(timeout=10)
        assert time.monotonic() - started < 5
        # the caller is told, but the record stays with librdkafka (not timed out inside it,
        # where its idempotent producer could re-sequence: connectors/publisher.py)
        assert publisher.in_flight() == 1
    assert caught.value.retriable
    assert publisher.in_flight() == 0  # closed: purged, librdkafka stops retrying the broker


def test_bulk_load_summarises_accepted_and_rejected_lines(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch
) -> None:
    good = [recent_purchase(i, purchase_id=f"p-{uuid.uuid4().hex}") for i in range(200)]
    lines = [orjson.dumps(r) for r in good]
    lines.insert(10, orjson.dumps(recent_purchase(900, quantity=101)))  # line 11
    lines.insert(20, b"{not json")  # line 21
    lines.insert(30, b"")  # line 31: blank, skipped
    envelope = {"kind": "auth", "record": {"event_id": "e-1"}}  # another kind: skipped
    lines.append(orjson.dumps(envelope))
    lines.append(orjson.dumps({"kind": "purchase", "record": recent_purchase(901, purchase_id="p-env")}))
    path = tmp_path / "purchases.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    for name, value in {"KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
                        "KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    from infra.settings import get_settings

    get_settings.cache_clear()
    try:
        code = cli.main(["publish", "purchases", str(path), "--json", "--quiet"])
    finally:
        get_settings.cache_clear()
    summary = orjson.loads(capsys.readouterr().out)
    assert code == 2
    assert (summary["accepted"], summary["rejected"], summary["skipped"]) == (201, 2, 2)
    assert [r["line"] for r in summary["rejections"]] == [11, 21]
    assert summary["rejections"][0]["reasons"] == [
        "quantity: Input should be less than or equal to 100"]  # fmt: skip
    assert summary["rejections"][1]["reasons"][0].startswith("body: Invalid JSON")
    assert topic_records(settings, PURCHASES) == 201


def test_many_futures_complete_without_flush_per_record(settings: Settings) -> None:
    with Publisher(settings) as publisher:
        futures = [publisher.publish_purchase(recent_purchase(i)) for i in range(2000)]
        done, not_done = wait(futures, timeout=60)
    assert not not_done and all(f.exception() is None for f in done)
    assert topic_records(settings, PURCHASES) == 2000
