"""Each worker's own complete copy of the IP, device, card and show states.

Why: per-wallet state is co-partitioned with the purchases (one writer per wallet), but an
IP, a device, a card or a show is shared by wallets on every partition. A worker that owns
some partitions must still see the whole entity. So every worker reads EVERY partition of the
purchases topic itself (its own consumer, no consumer group, nothing committed) and applies
each purchase to a ``processors.entity_state.EntityStore``: a deterministic function of the
topic, complete with 1, 2, 3 or more workers, rebuilt by re-reading after a restart.

Cost: each worker decodes every purchase once more (~25 µs each) and holds every entity
state of the last 24 h (shows: 7 d). In exchange the scoring path reads entities in memory,
with no repartition hop and no table.

Consistency: the store answers queries as of a purchase's event time ``t`` (rows strictly
before ``t``), so it may run ahead. ``wait_covers(t)`` holds a scoring batch until the replica
has applied, on every partition, either a record at or after ``t`` or everything the broker
had when last asked (its high watermark): features then equal what replay computes, up to
records still in flight to the broker (bounded by one fetch wait).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from infra import topics
from infra.settings import Settings
from processors.entity_state import EntityStore
from processors.timeutil import to_ms
from schemas.codec import AvroCodec, DecodeError

log = logging.getLogger(__name__)

CONSUME_BATCH = 1000


class EntityReplica:
    def __init__(self, settings: Settings, codec: AvroCodec, store: EntityStore | None = None):
        self.store = store or EntityStore()
        self.lock = threading.Lock()  # held while applying a chunk and while reading features
        self.topic = topics.full_name(topics.PURCHASES, settings.kafka.topic_prefix)
        self.codec = codec
        conf = settings.kafka.consumer_conf(f"replica-{uuid.uuid4().hex[:12]}",
                                            **{"enable.partition.eof": True})
        self.consumer = Consumer(conf)
        self.latest_ms: dict[int, int] = {}  # partition -> largest event time applied
        self.caught_up: dict[int, bool] = {}  # partition -> read up to the known end
        self.next_offset: dict[int, int] = {}  # partition -> offset after the last applied
        self.applied = 0
        self._progress = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="entity-replica", daemon=True)

    def start(self, timeout: float = 30.0) -> EntityReplica:
        meta = self.consumer.list_topics(self.topic, timeout=timeout).topics[self.topic]
        if meta.error is not None:
            raise KafkaException(meta.error)
        partitions = sorted(meta.partitions)
        self.latest_ms = {p: -1 for p in partitions}
        self.caught_up = {p: False for p in partitions}
        self.next_offset = {p: 0 for p in partitions}
        self.consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.consumer.close()

    def covers(self, ts_ms: int, offsets: dict[int, int] | None = None) -> bool:
        """Every partition has applied a record at or after ``ts_ms`` or reached its known
        end; and each partition in ``offsets`` has applied its record at that offset."""
        if offsets and any(self.next_offset.get(p, 0) <= o for p, o in offsets.items()):
            return False
        return all(self.caught_up[p] or self.latest_ms[p] >= ts_ms for p in self.latest_ms)

    def wait_covers(self, ts_ms: int, offsets: dict[int, int] | None = None,
                    timeout: float = 5.0) -> bool:
        """Block until ``covers(ts_ms, offsets)`` (True) or the timeout (False)."""
        deadline = time.monotonic() + timeout
        with self._progress:
            while not self.covers(ts_ms, offsets):
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._progress.wait(min(left, 0.05))
        return True

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                messages = self.consumer.consume(CONSUME_BATCH, timeout=0.05)
                if messages:
                    self._apply(messages)
        except Exception:  # the worker notices: wait_covers returns False from then on
            log.exception("entity replica stopped")

    def _apply(self, messages) -> None:
        records, at_end, offsets = [], {}, {}
        for msg in messages:  # in order: an end-of-partition event, then perhaps new records
            partition, err = msg.partition(), msg.error()
            if err is not None:
                at_end[partition] = err.code() == err._PARTITION_EOF or at_end.get(partition, False)
                continue
            at_end[partition] = False
            offsets[partition] = msg.offset() + 1
            try:
                records.append((partition, self.codec.decode(msg.value())))
            except DecodeError:
                continue  # the scorer dead-letters it
        with self.lock:
            for partition, purchase in records:
                self.store.apply(purchase)
                ts = to_ms(purchase["occurred_at"]) or 0
                if ts > self.latest_ms[partition]:
                    self.latest_ms[partition] = ts
        self.applied += len(records)
        with self._progress:
            self.caught_up.update(at_end)
            self.next_offset.update(offsets)
            self._progress.notify_all()
