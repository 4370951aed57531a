"""The Faust overrides: stale-generation records are never processed or acked."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from streams.faust_compat import current_events, is_stale

pytestmark = pytest.mark.unit


def event(partition: int, offset: int, generation: int):
    message = SimpleNamespace(tp=("t", partition), offset=offset, generation_id=generation)
    return SimpleNamespace(message=message)


def test_a_message_from_a_revoked_or_older_generation_is_stale():
    assert not is_stale(event(0, 1, 3).message, current_generation=3, revoked_generation=2)
    assert is_stale(event(0, 1, 2).message, current_generation=3, revoked_generation=2)
    # revoked, not yet reassigned: the current generation id has not moved yet
    assert is_stale(event(0, 1, 3).message, current_generation=3, revoked_generation=3)
    assert not is_stale(SimpleNamespace(offset=1), current_generation=3, revoked_generation=2)


def test_a_batch_keeps_each_current_record_once_in_order():
    consumer = SimpleNamespace(is_stale=lambda m: is_stale(m, 5, 4))
    app = SimpleNamespace(consumer=consumer)
    # take_events kept stale copies of offsets 39-41 across a rebalance; the redelivered
    # copies of 39 and 40 came again, 40 even twice
    batch = [event(2, 39, 4), event(2, 40, 4), event(2, 41, 4), event(2, 39, 5),
             event(2, 40, 5), event(2, 40, 5), event(1, 7, 5)]
    kept = current_events(batch, app)
    assert [(e.message.tp[1], e.message.offset, e.message.generation_id) for e in kept] == [
        (2, 39, 5), (2, 40, 5), (1, 7, 5)]
