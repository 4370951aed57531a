"""Where the chain listener's output goes: Kafka, one transaction per round.

A round's ChainTransfer records (Avro, Confluent framing, keyed by the receiving wallet), any
security events, and then the checkpoint are produced in ONE Kafka transaction
(``transactional.id`` = the listener's identity, so a second copy of the same listener fences
the first). Readers with ``read_committed`` see a round whole or not at all: a crash anywhere
leaves neither a gap nor a duplicate, and the checkpoint never runs ahead of the records.

``transactional=False`` (brokers without transactions, such as Tansu) keeps the order
records → flush → checkpoint → flush with the idempotent producer (acks=all): at-least-once,
and a crash between the two flushes re-publishes that round; records carry idempotent ids.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaException, Producer

from connectors.chain_checkpoint import Checkpoint, checkpoint_key, read_checkpoint
from connectors.chain_decode import transfer_id, transfer_key
from infra.producing import Deliveries, OutputError
from infra.settings import Settings
from infra.topics import CHAIN_CHECKPOINTS, CHAIN_TRANSFERS, SECURITY_EVENTS, full_name
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings

log = logging.getLogger(__name__)


class KafkaChainOutput:
    def __init__(
        self,
        settings: Settings,
        chain_id: int,
        name: str,
        *,
        transactional: bool = True,
        timeout_s: float = 30.0,
    ):
        prefix = settings.kafka.topic_prefix
        self.transfers_topic = full_name(CHAIN_TRANSFERS, prefix)
        self.checkpoints_topic = full_name(CHAIN_CHECKPOINTS, prefix)
        self.events_topic = full_name(SECURITY_EVENTS, prefix)
        self.key = checkpoint_key(chain_id, name)
        self.transactional = transactional
        self.timeout_s = timeout_s
        self._kafka = settings.kafka
        registry = registry_from_settings(settings)
        self.transfers = AvroCodec.for_topic(registry, CHAIN_TRANSFERS)
        self.events = AvroCodec.for_topic(registry, SECURITY_EVENTS)
        extra: dict[str, Any] = {"linger.ms": 5}
        if transactional:
            extra["transactional.id"] = f"sentinel-chain-{prefix}{self.key}"
        self.producer = Producer(settings.kafka.producer_conf(**extra))
        self.deliveries = Deliveries(self.producer, backoff_s=0.1)
        if transactional:
            self.producer.init_transactions(timeout_s)  # fences an older copy, aborts its txn

    def load_checkpoint(self) -> Checkpoint | None:
        conf = self._kafka.consumer_conf("unused")
        return read_checkpoint(conf, self.checkpoints_topic, self.key, deadline_s=self.timeout_s)

    def commit(
        self,
        records: Sequence[dict[str, Any]],
        checkpoint: Checkpoint,
        events: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Publish ``records`` and ``events``, then ``checkpoint``: all or nothing."""
        if not self.transactional:
            self._produce_all(records, events)
            self._flush()
            self._produce_checkpoint(checkpoint)
            self._flush()
            return
        try:
            self.producer.begin_transaction()
            self._produce_all(records, events)
            self._produce_checkpoint(checkpoint)
            self.producer.commit_transaction(self.timeout_s)
        except KafkaException as exc:
            self._abort(exc)
            raise OutputError(f"round up to block {checkpoint.block} not committed: {exc}") from exc

    def close(self) -> None:
        self.producer.flush(self.timeout_s)

    # ------------------------------------------------------------ internals

    def _produce_all(self, records: Sequence[dict], events: Sequence[dict]) -> None:
        for record in records:
            self._produce(
                self.transfers_topic,
                transfer_key(record).encode(),
                self.transfers.encode(record),
                headers=[("id", transfer_id(record).encode())],
            )
        for event in events:
            key = (event.get("wallet") or event["source"]).encode()
            self._produce(self.events_topic, key, self.events.encode(event))

    def _produce_checkpoint(self, checkpoint: Checkpoint) -> None:
        self._produce(self.checkpoints_topic, self.key.encode(), checkpoint.to_bytes())

    def _produce(self, topic: str, key: bytes, value: bytes, headers: list | None = None) -> None:
        self.deliveries.produce(topic, value, key, headers=headers)

    def _flush(self) -> None:
        self.deliveries.flush_or_raise(self.timeout_s)

    def _abort(self, exc: KafkaException) -> None:
        error = exc.args[0] if exc.args else None
        if error is not None and hasattr(error, "fatal") and error.fatal():
            raise OutputError(f"fatal producer error (fenced?): {exc}") from exc
        try:
            self.producer.abort_transaction(self.timeout_s)
        except KafkaException as abort_exc:
            log.error("abort_transaction failed: %s", abort_exc)
