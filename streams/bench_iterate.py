"""The Faust ceiling for ``sentinel bench pipeline``: a worker whose one agent only iterates
records (same batching as the real agents). It writes {"count", "first", "last"} (wall
seconds) and "cpu_s" (the process's CPU time from its first batch to its last) to
``SENTINEL_BENCH_REPORT`` once it has seen ``SENTINEL_BENCH_COUNT`` records.

    python -m streams.bench_iterate   (env: KAFKA_*, SENTINEL_APP_ID, SENTINEL_BENCH_*)
"""

from __future__ import annotations

import json
import os
import sys
import time

from infra.settings import get_settings
from streams.app import create_app

settings = get_settings()
app = create_app(settings)
topic = app.topic(os.environ["SENTINEL_BENCH_TOPIC"], key_type=bytes, value_type=bytes)
TARGET = int(os.environ["SENTINEL_BENCH_COUNT"])
REPORT = os.environ["SENTINEL_BENCH_REPORT"]


@app.agent(topic)
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


if __name__ == "__main__":
    sys.argv = ["bench-iterate", "worker", "--without-web", "--loglevel=warn"]
    app.main()
