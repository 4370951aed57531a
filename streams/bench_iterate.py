"""The Faust ceilings for ``sentinel bench pipeline``: a worker whose one agent only iterates
records (same batching as the real agents). It writes {"count", "first", "last"} (wall
seconds) and "cpu_s" (the process's CPU time from its first batch to its last) to
``SENTINEL_BENCH_REPORT`` once it has seen ``SENTINEL_BENCH_COUNT`` records.

With ``SENTINEL_BENCH_FORWARD_TO`` (a topic), the agent takes its batches as the scoring
agent does (``take_available``) and sends each record on to that topic, unchanged, through
a confluent-kafka producer with the worker's outputs' linger: the latency floor of a Faust
agent that does nothing else (``streams.bench.faust_latency_floor``).

    python -m streams.bench_iterate   (env: KAFKA_*, SENTINEL_APP_ID, SENTINEL_BENCH_*)
"""

from __future__ import annotations

import json
import os
import sys
import time

from confluent_kafka import Producer

from infra.settings import get_settings
from streams.app import create_app
from streams.faust_compat import take_available
from streams.outputs import OUTPUTS_LINGER_MS

settings = get_settings()
app = create_app(settings)
topic = app.topic(os.environ["SENTINEL_BENCH_TOPIC"], key_type=bytes, value_type=bytes)
TARGET = int(os.environ["SENTINEL_BENCH_COUNT"])
REPORT = os.environ["SENTINEL_BENCH_REPORT"]
FORWARD_TO = os.environ.get("SENTINEL_BENCH_FORWARD_TO")


async def iterate_only(stream):
    count, first, cpu_first = 0, None, 0.0
    cfg = settings.stream
    async for events in stream.take_events(cfg.batch_size, cfg.batch_within_s):
        if first is None:
            first, cpu_first = time.time(), time.process_time()
        count += len(events)
        if count >= TARGET:
            with open(REPORT, "w") as f:
                json.dump({"count": count, "first": first, "last": time.time(),
                           "cpu_s": time.process_time() - cpu_first}, f)


async def forward_only(stream):
    producer = Producer(settings.kafka.producer_conf(**{"linger.ms": OUTPUTS_LINGER_MS}))
    cfg = settings.stream
    async for events in take_available(stream, cfg.batch_size, cfg.batch_within_s):
        for event in events:
            producer.produce(FORWARD_TO, event.message.value, event.message.key)
        producer.poll(0)


app.agent(topic)(forward_only if FORWARD_TO else iterate_only)


if __name__ == "__main__":
    sys.argv = ["bench-iterate", "worker", "--without-web", "--loglevel=warn"]
    app.main()
