"""Simulated traffic onto the source topics, as a backfill: each record encoded with its
topic's Avro codec and keyed as its source keys it (purchases and auth events by wallet,
chain transfers by the receiving wallet, labels by purchase), through the agents' producer
helper (``streams.outputs.Outputs``: flush-or-raise).

Not the edge: the webhook refuses events older than a topic's retention or in the future,
while a backfill of weeks of simulated history is old by design. Callers publish only what
would be known by their "now" (labels dated later are theirs to hold back).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from infra import topics
from infra.settings import Settings
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings

SPECS = {"purchase": topics.PURCHASES, "auth": topics.AUTH_EVENTS,
         "transfer": topics.CHAIN_TRANSFERS, "label": topics.LABELS}
KEYS = {"purchase": lambda r: r["wallet"], "auth": lambda r: r.get("wallet") or r["user_id"],
        "transfer": lambda r: r["to_address"], "label": lambda r: r["purchase_id"]}


def publish_events(settings: Settings, events: Iterable[tuple[str, dict]],
                   kinds: Iterable[str] = tuple(SPECS)) -> Counter:
    """Publish the ``kinds`` among ``events``; returns how many of each were acknowledged."""
    from streams.outputs import Outputs

    registry = registry_from_settings(settings)
    codecs = {kind: AvroCodec.for_topic(registry, spec) for kind, spec in SPECS.items()}
    outputs = Outputs(settings, component="sentinel-backfill")
    wanted, sent = set(kinds), Counter()
    for kind, record in events:
        if kind in wanted:
            outputs.send(SPECS[kind], KEYS[kind](record), codecs[kind].encode(record))
            sent[kind] += 1
            if sent.total() % 5000 == 0:
                outputs.producer.poll(0)
    outputs.flush(120)
    return sent
