"""Faust topic objects for the registry in infra/topics.py (raw bytes: decoding is per record
in the agents, so a bad record goes to the dead-letter topic instead of crashing the stream)."""

from __future__ import annotations

from infra import topics
from infra.settings import get_settings
from streams.app import app

_prefix = get_settings().kafka.topic_prefix


def _topic(spec: topics.TopicSpec):
    return app.topic(
        topics.full_name(spec, _prefix),
        key_type=bytes,
        value_type=bytes,
        partitions=spec.partitions,
        internal=False,
    )


purchases = _topic(topics.PURCHASES)
auth_events = _topic(topics.AUTH_EVENTS)
chain_transfers = _topic(topics.CHAIN_TRANSFERS)
