"""``sentinel bench pipeline``'s latency floor: a Faust agent that only forwards each purchase
to a topic, on the real broker, every record sent at each rate received and timed."""

from __future__ import annotations

import pytest

from infra import topics
from infra.settings import Settings
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from streams.bench import faust_latency_floor
from tests.conftest import app_id
from tests.support.records import purchase

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_floor_agent_forwards_every_record_and_each_rate_is_timed(settings: Settings,
                                                                        tmp_path) -> None:
    stream = settings.stream.model_copy(update={"app_id": app_id(settings)})  # deleted after
    settings = settings.model_copy(update={"stream": stream})
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.PURCHASES)

    floor = faust_latency_floor(settings, [purchase(0)], codec, [100, 200], 1.0, tmp_path)

    assert [(r["rate"], r["records"]) for r in floor] == [(100, 100), (200, 200)]
    for rate in floor:  # every record came back (else it raises), each after a real hop
        latency = rate["latency_ms"]
        assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"] < 10_000
        # the agent's CPU a record, its main thread and the thread that fetches, by name:
        # Faust's consumer thread (aiokafka), or the librdkafka reader's (faust_compat 14)
        cpu = rate["cpu_us_per_record_by_thread"]
        fetching = {"aiokafka": "faust-consumer", "librdkafka": "rd-fetch"}
        assert cpu["MainThread"] > 0 and cpu[fetching[settings.stream.fetcher]] > 0, cpu
