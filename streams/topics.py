"""Faust topic objects for the registry in infra/topics.py (raw bytes: decoding is per record
in the agents, so a bad record goes to the dead-letter topic instead of crashing the stream)."""

from __future__ import annotations

from infra import topics
from infra.settings import get_settings
from streams.app import app

_prefix = get_settings().kafka.topic_prefix


def _topic(*specs: topics.TopicSpec):
    return app.topic(
        *(topics.full_name(spec, _prefix) for spec in specs),
        key_type=bytes,
        value_type=bytes,
        partitions=specs[0].partitions,
    )


purchases = _topic(topics.PURCHASES)
auth_events = _topic(topics.AUTH_EVENTS)
# Both sides of a transfer: the source (keyed by receiver) and its re-keyed twin (by sender).
transfers = _topic(topics.CHAIN_TRANSFERS, topics.TRANSFERS_BY_SENDER)
