"""Simulated traffic onto the topics, as the platform's sources would publish it.

Purchases, auth events and labels go through the producer client (``connectors.publisher``:
the webhook's validation, Avro, acknowledged delivery); chain transfers are encoded with the
topic's codec and keyed by the receiving wallet, as the chain listener does. Used by the
learning benchmark and the tests that train from topics.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from confluent_kafka import Producer

from infra import topics
from infra.settings import Settings
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings


def publish_events(settings: Settings, events: Iterable[tuple[str, dict]],
                   kinds: Iterable[str] = ("purchase", "auth", "transfer", "label")) -> Counter:
    """Publish the ``kinds`` among ``events``; returns how many of each were acknowledged."""
    from connectors.publisher import Publisher

    wanted, sent = set(kinds), Counter()
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.CHAIN_TRANSFERS)
    chain_topic = topics.full_name(topics.CHAIN_TRANSFERS, settings.kafka.topic_prefix)
    chain = Producer(settings.kafka.producer_conf())
    futures = []
    with Publisher(settings) as publisher:
        send = {"purchase": publisher.publish_purchase, "auth": publisher.publish_auth_event,
                "label": publisher.publish_label}
        for kind, record in events:
            if kind not in wanted:
                continue
            if kind == "transfer":
                chain.produce(chain_topic, codec.encode(record), record["to_address"])
                chain.poll(0)
            else:
                futures.append(send[kind](record))
            sent[kind] += 1
    if chain.flush(60):
        raise RuntimeError("chain transfers not acknowledged within 60 s")
    for future in futures:
        future.result(60)  # raises DeliveryFailed
    return sent
