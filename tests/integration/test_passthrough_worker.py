"""The Faust worker on the real broker: Avro purchases in, one decision each out; bad bytes go
to the purchases dead-letter topic with the reason, and the worker keeps going."""

from __future__ import annotations

import pytest

from infra import topics
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from tests.support.kafka import Worker, produce, read_until
from tests.support.records import purchase

pytestmark = pytest.mark.integration


def test_worker_decides_valid_purchases_and_dead_letters_bad_bytes(settings, env, tmp_path):
    registry = registry_from_settings(settings)
    codec = AvroCodec.for_topic(registry, topics.PURCHASES)
    good = [purchase(n) for n in range(20)]
    bad = [b"not avro at all", b"\x00\x00\x00\x7f\xffgarbage", b"\x00"]
    items = [(p["wallet"], codec.encode(p)) for p in good[:10]]
    items += [(b"bad-key", value) for value in bad]
    items += [(p["wallet"], codec.encode(p)) for p in good[10:]]
    produce(settings, topics.PURCHASES, items)

    worker = Worker(env, tmp_path / "worker.log")
    try:
        decisions = read_until(
            settings, topics.DECISIONS, lambda m: len(m) >= len(good), 90, worker.assert_alive
        )
        dead = read_until(settings, topics.dlq(topics.PURCHASES), lambda m: len(m) >= len(bad))
    finally:
        worker.stop()

    decision_codec = AvroCodec.for_topic(registry, topics.DECISIONS)
    decoded = [decision_codec.decode(m.value()) for m in decisions]
    assert sorted(d["purchase_id"] for d in decoded) == sorted(p["purchase_id"] for p in good)
    assert {d["decision"] for d in decoded} <= {"APPROVED", "REQUIRE_2FA", "MANUAL_REVIEW", "BLOCKED"}
    assert all(m.key().decode() == d["wallet"] for m, d in zip(decisions, decoded, strict=True))

    dlq_codec = AvroCodec.for_topic(registry, topics.dlq(topics.PURCHASES))
    letters = [dlq_codec.decode(m.value()) for m in dead]
    assert [dl["original_value"] for dl in letters] == bad
    assert all(dl["error_class"] == "DecodeError" for dl in letters)
    assert "wrong magic byte" in letters[0]["error_message"]
    assert "unknown schema id" in letters[1]["error_message"]
    assert "truncated" in letters[2]["error_message"]
    assert {dl["origin_topic"] for dl in letters} == {
        topics.full_name(topics.PURCHASES, settings.kafka.topic_prefix)
    }
