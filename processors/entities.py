"""Entity keys of a purchase and how one observation updates an entity's state.

The stream sends every purchase, as observations of the entities it touches, to the partition
that owns each entity key, so that each entity's state has a single writer
(``streams/agents.py``: ``track_entities``); replay applies the same updates in
``FeatureEngine``.
"""

from __future__ import annotations

import zlib
from collections import defaultdict

from processors.apply import Record, apply_to_show
from processors.money import unit_price_ref
from processors.state import EntityState, ShowState
from processors.timeutil import to_ms

KINDS = ("ip", "device", "card", "show")


def entity_keys(purchase: Record) -> list[str]:
    """``ip:<ip>``, ``device:<id>``, ``card:<fingerprint>``, ``show:<id>`` (when present)."""
    values = (
        purchase.get("ip"),
        purchase.get("device_id"),
        purchase.get("card_fingerprint"),
        purchase.get("show_id"),
    )
    return [f"{kind}:{value}" for kind, value in zip(KINDS, values, strict=True) if value]


def partition_of(key: str, partitions: int) -> int:
    """The partition that owns an entity key (CRC-32: stable across processes and runs)."""
    return zlib.crc32(key.encode()) % partitions


def observation(key: str, purchase: Record) -> dict:
    """What an entity state needs of a purchase (``schemas/entity_observations.avsc``)."""
    return {
        "entity": key,
        "purchase_id": purchase["purchase_id"],
        "wallet": purchase["wallet"],
        "occurred_at": purchase["occurred_at"],
        # in reference minor units already: an observation carries no currency
        "unit_price_minor": unit_price_ref(purchase),
        "quantity": purchase["quantity"],
        "channel": purchase["channel"],
        "ticket_id": purchase["ticket_id"],
        "sale_opens_at": purchase.get("sale_opens_at"),
    }


def observations_by_partition(purchases: list[Record], partitions: int) -> dict[int, list[dict]]:
    """A batch's observations grouped by owning partition, in purchase order."""
    grouped: dict[int, list[dict]] = defaultdict(list)
    for purchase in purchases:
        for key in entity_keys(purchase):
            grouped[partition_of(key, partitions)].append(observation(key, purchase))
    return dict(grouped)


def observe_entity(
    key: str, state: EntityState | ShowState | None, purchase: Record
) -> EntityState | ShowState:
    """The state of ``key`` after ``purchase`` (a purchase or an observation of one); a new
    state when ``state`` is None."""
    ts = to_ms(purchase["occurred_at"])
    assert ts is not None
    if key.startswith("show:"):
        show = state if isinstance(state, ShowState) else ShowState()
        apply_to_show(show, purchase, ts)
        return show
    entity = state if isinstance(state, EntityState) else EntityState()
    entity.observe(purchase["wallet"], ts)
    return entity

