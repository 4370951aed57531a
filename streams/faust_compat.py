"""Every override of Faust's internals, in one place, for the Faust version they were written for.

faust-streaming 0.15 (checked at import: another version refuses to start until these are
re-read against its source):

1. **Fetch wait.** Worker consumers hard-code ``fetch_max_wait_ms=1500``; on a broker that
   holds fetches for the full wait that is ~half a second per hop (DESIGN.md "Known facts").
   Our transport sets it from ``KAFKA_FETCH_WAIT_MAX_MS`` (default 10 ms).
2. **Acks across a rebalance.** Faust stamps each fetched message with the consumer
   generation. After a rebalance it seeks every partition back to its committed offset, so a
   message fetched in an older generation will be delivered again — but Faust still *acks*
   the stale copy (``Stream._py_aiter`` acks the messages it skips for their generation, and
   ``take_events`` acks whatever its buffer held when the rebalance came), and an ack is what
   the next commit is made of. A stale ack can commit an offset no current-generation record
   was processed for: the record is then never decided (issue 8: "299 of 300 decisions").
   ``Consumer.ack`` below refuses acks of stale-generation messages and every ack while a
   rebalance is in progress; the records are redelivered and decided then.
3. **Batches across a rebalance.** ``take_events`` keeps its buffer across a rebalance, so a
   batch can hold the stale copy of a record *and* its redelivered copy: decided twice, the
   second time seeing the first as a previous purchase. ``current_events`` drops stale and
   repeated records from a batch.

Selected by the broker URL scheme ``sentinel://``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import faust
from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka

from infra.settings import get_settings

log = logging.getLogger(__name__)

SCHEME = "sentinel"
WRITTEN_FOR = "0.15."

if not faust.__version__.startswith(WRITTEN_FOR):
    raise ImportError(
        f"streams/faust_compat.py overrides faust-streaming {WRITTEN_FOR}x internals; "
        f"installed is {faust.__version__}: re-check each override against its source"
    )


def is_stale(message, current_generation: int, revoked_generation: int) -> bool:
    """A message fetched in a generation that has since been revoked or replaced: its
    partition was (or will be) sought back to the committed offset, so it comes again."""
    generation = getattr(message, "generation_id", None)
    if generation is None:
        return False
    return generation != current_generation or generation <= revoked_generation


def current_events(events: Sequence, app) -> list:
    """The batch without stale-generation records and without repeated (tp, offset) pairs."""
    consumer = app.consumer
    seen: set[tuple[object, int]] = set()
    kept = []
    for event in events:
        message = event.message
        key = (message.tp, message.offset)
        if key in seen or consumer.is_stale(message):
            continue
        seen.add(key)
        kept.append(event)
    if len(kept) != len(events):
        log.info("dropped %d stale or repeated records from a batch", len(events) - len(kept))
    return kept


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = get_settings().kafka.fetch_wait_max_ms
        return consumer


class Consumer(faust_aiokafka.Consumer):
    revoked_generation = -1  # the generation whose partitions were last revoked

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def on_partitions_revoked(self, revoked) -> None:
        self.revoked_generation = max(self.revoked_generation, self.app.consumer_generation_id)
        await super().on_partitions_revoked(revoked)

    def is_stale(self, message) -> bool:
        return is_stale(message, self.app.consumer_generation_id, self.revoked_generation)

    def ack(self, message) -> bool:
        """Refuse acks that could commit an offset no current record was processed for."""
        if self.is_stale(message):
            message.acked = True  # nobody acks it again; the redelivered copy is acked instead
            return False
        return super().ack(message)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


def register() -> None:
    drivers.TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
