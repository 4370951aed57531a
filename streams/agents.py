"""Faust agents: read, decode, call processors/, send. I/O only; the logic is elsewhere."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from infra import topics as registry
from infra.settings import get_settings
from schemas.codec import AvroCodec, DecodeError
from schemas.registry import registry_from_settings
from streams import topics
from streams.app import app
from streams.outputs import Outputs

log = logging.getLogger(__name__)
settings = get_settings()
purchase_codec = AvroCodec.for_topic(registry_from_settings(settings), registry.PURCHASES)
outputs = Outputs(settings, component="decide_purchases")


def placeholder_decision(purchase: dict) -> dict:
    """Until scoring lands: every valid purchase is APPROVED with score 0."""
    now = datetime.now(UTC)
    arrived = purchase.get("ingested_at") or purchase["occurred_at"]
    return {
        "decision_id": f"dec_{purchase['purchase_id']}",
        "purchase_id": purchase["purchase_id"],
        "wallet": purchase["wallet"],
        "organizer_id": purchase["organizer_id"],
        "decision": "APPROVED",
        "score": 0.0,
        "model_score": 0.0,
        "rule_score": 0.0,
        "model_version": "placeholder",
        "rules_version": "placeholder",
        "occurred_at": purchase["occurred_at"],
        "decided_at": now,
        "latency_ms": max(0.0, (now - arrived).total_seconds() * 1000),
    }


@app.agent(topics.purchases)
async def decide_purchases(stream):
    """Batch purchases, decide each, send decisions; bad records go to the dead-letter topic."""
    cfg = settings.stream
    async for events in stream.take_events(cfg.batch_size, within=cfg.batch_within_s):
        for event in events:
            try:
                purchase = purchase_codec.decode(event.value)
            except DecodeError as exc:
                outputs.dead_letter(registry.PURCHASES, event, exc)
                continue
            outputs.decision(placeholder_decision(purchase))
        await asyncio.to_thread(outputs.flush)
