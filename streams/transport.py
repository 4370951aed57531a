"""Faust's aiokafka transport with a configurable consumer fetch wait.

faust-streaming 0.15 hard-codes ``fetch_max_wait_ms=1500`` for worker consumers; on a broker
that holds fetches for the full wait that is ~half a second per hop (DESIGN.md, "Known facts").
This transport sets the wait from ``KAFKA_FETCH_WAIT_MAX_MS`` (default 10 ms) before the
consumer starts. Selected by the broker URL scheme ``sentinel://``.
"""

from __future__ import annotations

from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka

from infra.settings import get_settings

SCHEME = "sentinel"


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = get_settings().kafka.fetch_wait_max_ms
        return consumer


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


def register() -> None:
    drivers.TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
