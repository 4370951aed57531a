"""Entity keys of a purchase and how one observation updates an entity's state.

The stream re-keys every purchase by the entities it touches so that each entity's state has
a single writer (``streams/agents.py``: ``track_entities``); replay applies the same updates in
``FeatureEngine``.
"""

from __future__ import annotations

from processors.apply import Record, apply_to_show
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


def observe_entity(
    key: str, state: EntityState | ShowState | None, purchase: Record
) -> EntityState | ShowState:
    """The state of ``key`` after ``purchase``; a new state when ``state`` is None."""
    ts = to_ms(purchase["occurred_at"])
    assert ts is not None
    if key.startswith("show:"):
        show = state if isinstance(state, ShowState) else ShowState()
        apply_to_show(show, purchase, ts)
        return show
    entity = state if isinstance(state, EntityState) else EntityState()
    entity.observe(purchase["wallet"], ts)
    return entity


observe = observe_entity  # the name streams/agents.py calls (ctx.entities.observe)
