"""Repeat offenders: each automated response lasts longer than the last, up to a ceiling, and
never forever."""

from __future__ import annotations

import pytest

from sinks.siem.escalation import RepeatPolicy

pytestmark = pytest.mark.unit
HOUR = 3_600_000


def test_ttls_double_per_offence_up_to_the_ceiling():
    policy = RepeatPolicy(factor=2.0, max_ttl_ms=24 * HOUR)
    assert [policy.ttl_ms(HOUR, n) for n in range(1, 8)] == [
        HOUR, 2 * HOUR, 4 * HOUR, 8 * HOUR, 16 * HOUR, 24 * HOUR, 24 * HOUR]


def test_a_base_above_the_ceiling_is_capped_and_counts_start_at_one():
    policy = RepeatPolicy(factor=3.0, max_ttl_ms=2 * HOUR)
    assert policy.ttl_ms(5 * HOUR, 1) == 2 * HOUR
    assert policy.ttl_ms(HOUR, 0) == HOUR  # a first offence, however counted
    assert policy.ttl_ms(HOUR, 10**6) == 2 * HOUR  # no overflow


def test_the_policy_refuses_nonsense():
    for bad in ({"factor": 0.5}, {"max_ttl_ms": 0}, {"memory_ms": -1}):
        with pytest.raises(ValueError):
            RepeatPolicy(**bad)
