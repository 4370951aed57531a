"""Which owned partitions a sink restarts, from librdkafka's statistics and the broker's ends
(sinks/stalls.py)."""

from __future__ import annotations

import pytest

from sinks.stalls import OFFSET_BEGINNING, StallWatch, position_of

pytestmark = pytest.mark.unit

T = "sentinel.decisions.v1"


def part(app: int = -1001, committed: int = -1001, desired: bool = True) -> dict:
    return {"desired": desired, "app_offset": app, "committed_offset": committed,
            "hi_offset": 3, "fetch_state": "active"}  # fmt: skip


def stats(**partitions: dict) -> dict:
    return {"topics": {T: {"partitions": {k.lstrip("p"): v for k, v in partitions.items()}}}}


def test_a_partition_that_does_not_move_for_stall_s_is_a_candidate() -> None:
    watch = StallWatch(stall_s=30)
    for now in (0, 10, 20, 29.9):
        watch.observe(stats(p0=part(app=4)), now)
        assert watch.candidates() == {}
    watch.observe(stats(p0=part(app=4)), 30)
    assert watch.candidates() == {(T, 0): 4}


def test_a_candidate_comes_again_only_after_another_stall_s() -> None:
    watch = StallWatch(stall_s=30)
    for now in (0, 30):
        watch.observe(stats(p0=part(app=4)), now)
    assert watch.candidates() == {(T, 0): 4}
    watch.observe(stats(p0=part(app=4)), 45)
    assert watch.candidates() == {}
    watch.observe(stats(p0=part(app=4)), 60)
    assert watch.candidates() == {(T, 0): 4}


def test_a_moving_partition_is_not_a_candidate() -> None:
    watch = StallWatch(stall_s=30)
    for n, now in enumerate((0, 20, 40, 60)):
        watch.observe(stats(p0=part(app=n)), now)
    assert watch.candidates() == {}


def test_a_candidate_is_stalled_only_with_records_past_its_position_still_there() -> None:
    watch = StallWatch(stall_s=30)
    for now in (0, 30):
        watch.observe(stats(p0=part(app=4), p1=part(app=9), p2=part(app=5)), now)
    asked = watch.candidates()
    assert asked == {(T, 0): 4, (T, 1): 9, (T, 2): 5}
    watch.observe(stats(p0=part(app=4), p1=part(app=9), p2=part(app=6)), 31)  # p2 moved
    ends = {(T, 0): 10, (T, 1): 9, (T, 2): 10}  # p1 is idle at its end
    assert watch.stalled(asked, ends) == {(T, 0): 4}


def test_a_partition_the_broker_did_not_answer_for_or_no_longer_owned_is_not_stalled() -> None:
    watch = StallWatch(stall_s=30)
    for now in (0, 30):
        watch.observe(stats(p0=part(app=4), p1=part(app=4)), now)
    asked = watch.candidates()
    watch.observe(stats(p0=part(app=4)), 31)  # p1 revoked meanwhile
    assert watch.stalled(asked, {(T, 1): 10}) == {}


def test_backing_off_holds_the_clock_and_drops_the_candidates_found_before() -> None:
    watch = StallWatch(stall_s=30)
    for now in (0, 30):
        watch.observe(stats(p0=part(app=4)), now)
    watch.quiet(35)
    assert watch.candidates() == {}
    watch.observe(stats(p0=part(app=4)), 60)
    assert watch.candidates() == {}
    watch.observe(stats(p0=part(app=4)), 65)
    assert watch.candidates() == {(T, 0): 4}


def test_partitions_not_owned_and_the_unassigned_pseudo_partition_are_ignored() -> None:
    watch = StallWatch(stall_s=30)
    for now in (0, 30, 60):
        watch.observe(stats(p1=part(app=4, desired=False), **{"p-1": part(app=4)}), now)
    assert watch.candidates() == {}


def test_a_partition_lost_and_owned_again_starts_a_new_count() -> None:
    watch = StallWatch(stall_s=30)
    watch.observe(stats(p0=part(app=4)), 0)
    watch.observe(stats(), 20)
    watch.observe(stats(p0=part(app=4)), 31)
    watch.observe(stats(p0=part(app=4)), 50)
    assert watch.candidates() == {}
    watch.observe(stats(p0=part(app=4)), 61)
    assert watch.candidates() == {(T, 0): 4}


def test_never_read_restarts_from_the_committed_offset_else_the_beginning() -> None:
    assert position_of(part(committed=7)) == 7
    assert position_of(part(app=9, committed=7)) == 9
    assert position_of(part()) == OFFSET_BEGINNING
    watch = StallWatch(stall_s=30)
    for now in (0, 30):
        watch.observe(stats(p0=part(), p1=part(committed=3)), now)
    asked = watch.candidates()
    assert asked == {(T, 0): OFFSET_BEGINNING, (T, 1): 3}
    assert watch.stalled(asked, {(T, 0): 1, (T, 1): 3}) == {(T, 0): OFFSET_BEGINNING}
    assert watch.stalled(asked, {(T, 0): 0, (T, 1): 3}) == {}  # an empty partition
