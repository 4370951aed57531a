"""The entity replica's prune floor (``EntityReplica._floor``): a partition the worker owns
with records not yet scored holds it where that partition is, however far behind the others
in event time, while it moves (scored, or owned, within ``STALL_S`` of wall time); one that
stalled longer holds it at most ``MAX_LAG_MS`` behind the newest batch. Measured before this:
a partition sought back to its start at start-up lagged ~9.6 simulated days for a few seconds,
the 7 d bound alone let the crowd store drop rows it then read."""

from __future__ import annotations

import pytest

from processors.timeutil import DAY_MS
from streams.entity_replica import LEAD_MS, MAX_LAG_MS, STALL_S
from tests.unit.test_entity_replica_reads import replica  # noqa: F401  (the fixture)

pytestmark = pytest.mark.unit

T = 1_700_000_000_000  # an event time (ms)
NOW = 1000.0  # a wall time (monotonic seconds)


def scored(r, partition: int, earliest_ms: int, latest_ms: int, at: float) -> None:
    """A batch of ``partition`` announced to replica ``r`` at wall time ``at`` (as
    ``announce`` records it, without applying its floor)."""
    r.moved_at[partition] = at
    r.scored[partition] = 10
    r.scored_ms[partition] = earliest_ms
    r.horizon_ms = max(r.horizon_ms, latest_ms + LEAD_MS)


def test_a_partition_not_scored_yet_holds_the_floor_while_it_is_new(replica):  # noqa: F811
    owned = {0: None, 1: None}
    ahead = T + 10 * DAY_MS  # partition 0 runs 10 days of event time ahead
    scored(replica, 0, ahead, ahead, NOW)
    assert replica._floor(ahead, owned, now=NOW) == -1  # 1 may still ask about anything
    assert replica._floor(ahead, owned, now=NOW + STALL_S - 1) == -1
    # ... until it has not moved for STALL_S: then no more than MAX_LAG_MS behind the newest
    assert replica._floor(ahead, owned, now=NOW + STALL_S + 1) == ahead - MAX_LAG_MS


def test_a_partition_that_moves_holds_the_floor_at_its_last_batch_however_far_behind(
        replica):  # noqa: F811
    owned = {0: None, 1: None}
    behind, ahead = T, T + 10 * DAY_MS  # 10 d apart: beyond MAX_LAG_MS
    scored(replica, 1, behind, behind + 60_000, NOW)
    scored(replica, 0, ahead, ahead, NOW + 5)
    assert replica._floor(ahead, owned, now=NOW + 5) == behind
    scored(replica, 1, behind + DAY_MS, behind + DAY_MS, NOW + 50)  # it moves on
    assert replica._floor(ahead, owned, now=NOW + 100) == behind + DAY_MS
    assert replica._floor(ahead, owned, now=NOW + 50 + STALL_S + 1) == ahead - MAX_LAG_MS


def test_a_partition_owned_again_starts_its_wait_afresh(replica):  # noqa: F811
    ahead = T + 10 * DAY_MS
    scored(replica, 0, ahead, ahead, NOW)
    assert replica._floor(ahead, {0: None, 1: None}, now=NOW) == -1  # 1 owned at NOW
    assert replica._floor(ahead, {0: None}, now=NOW + 30) == ahead  # 1 revoked
    assert 1 not in replica.moved_at
    later = NOW + 30 + STALL_S  # owned again: a new wait, not the stale one
    assert replica._floor(ahead, {0: None, 1: None}, now=later) == -1


def test_a_partition_with_nothing_pending_holds_nothing(replica):  # noqa: F811
    ahead = T + 10 * DAY_MS
    scored(replica, 0, ahead, ahead, NOW)
    replica.caught_up[1] = True  # fetched to its end, and nothing past what it scored
    replica.scored[1] = replica.next_offset[1] - 1
    assert replica._floor(ahead, {0: None, 1: None}, now=NOW) == ahead
