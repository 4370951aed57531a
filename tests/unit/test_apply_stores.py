"""``apply_stores(entities, crowds, order, read)`` (one native call, what ``FeatureEngine`` and
the live entity replica apply every purchase with) leaves both stores as
``entities.apply_order(order)`` then ``crowds.apply_order(order, read)`` leave them: on a
random stream with redeliveries and late purchases, the same entity rows, shows, crowd rows,
hourly counts and sizes; an order the entity store refuses raises the same error and changes
neither store."""

from __future__ import annotations

import pytest

from processors.crowd import crowd_read, crowd_store
from processors.entity_state import apply_stores, entity_store
from processors.records import read_order
from tests.unit.test_crowd_read import T0_HOUR, random_stream

pytestmark = pytest.mark.unit


def state(entities, crowds, orders, keys) -> dict:
    """What both stores hold for the orders' entities and the crowd keys."""
    return {
        "entities": entities.sizes(),
        "crowds": crowds.sizes(),
        "ips": {o.ip: entities.entity_rows("ip", o.ip) for o in orders},
        "cards": {o.card: entities.entity_rows("card", o.card) for o in orders if o.card},
        "shows": {o.show_id: entities.show(o.show_id) for o in orders},
        "keys": [entities.keys(kind) for kind in ("ip", "device", "card", "show")],
        "rows": {k: crowds.rows_of(k) for k in keys},
        "hours": {k: crowds.hourly_before(k, T0_HOUR + 60, 80) for k in keys},
    }


@pytest.mark.parametrize("seed", [7, 8])
def test_one_call_leaves_the_stores_as_the_two_applies(seed):
    stream = [{**p, "ip": p.get("ip") or "nope"} for p in random_stream(seed, 2500)]
    one, two = (entity_store(), crowd_store()), (entity_store(), crowd_store())
    orders, keys = [], set()
    for i, p in enumerate(stream):
        o = read_order(p)
        read = crowd_read(p, o.unit)
        apply_stores(*one, o, read)
        two[0].apply_order(o)
        two[1].apply_order(o, read)
        orders.append(o)
        keys.update(k for k in read.keys if k)
        if i % 500 == 0 or i == len(stream) - 1:
            assert state(*one, orders, keys) == state(*two, orders, keys), i
    assert one[0].has_seen(orders[-1].purchase_id) and one[1].has_seen(orders[-1].purchase_id)


def test_an_order_the_entity_store_refuses_changes_neither_store():
    p = random_stream(9, 1)[0]
    o = read_order({**p, "ip": "1.2.3.4"})
    read = crowd_read(p, o.unit)
    bad = o._replace(card="\udfff")
    entities, crowds = entity_store(), crowd_store()
    with pytest.raises(TypeError, match="failed to extract field OrderIn.card") as native:
        apply_stores(entities, crowds, bad, read)
    with pytest.raises(TypeError, match="failed to extract field OrderIn.card"):
        entity_store().apply_order(bad)
    assert isinstance(native.value.__cause__, UnicodeEncodeError)
    assert len(entities) == len(crowds) == 0
    assert not entities.has_seen(o.purchase_id) and not crowds.has_seen(o.purchase_id)


def test_a_shows_first_sales_are_listed_in_ticket_order():
    """``EntityStore.show`` lists a show's first primary sales by ticket, whatever order its
    map holds them in (the map is keyed at random per process)."""
    entities, crowds = entity_store(), crowd_store()
    for p in random_stream(7, 800):
        o = read_order({**p, "ip": p.get("ip") or "nope"})
        apply_stores(entities, crowds, o, crowd_read(p, o.unit))
    listed = [list(entities.show(show)["tickets"]) for show in entities.keys("show")]
    assert any(len(tickets) > 1 for tickets in listed)
    assert all(tickets == sorted(tickets) for tickets in listed)
