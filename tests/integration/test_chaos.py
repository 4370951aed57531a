"""The chaos run in its short form (``sentinel chaos --short``): a stack of its own, traffic
through the gateway while every service is SIGKILLed once, the broker restarts and PostgreSQL
and Redis are each unavailable; every accepted purchase ends with a decision, no incident is
alerted twice, and no purchase gets two different decisions."""

from __future__ import annotations

import json

import pytest

from infra.chaos import ChaosConfig, run

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(2400)]
CONFIG = ChaosConfig.short(seed=11)


@pytest.fixture(scope="module")
def report() -> dict:
    return run(CONFIG)


def summary(report: dict) -> str:
    """The report on a few short lines, where it failed first (CI shows a failure's tail)."""
    keys = ("lost_where", "accepted", "decided", "lost", "duplicated", "alerts",
            "alerts_duplicated", "kills", "outages", "sent", "elapsed_s", "load_avg", "lost_ids")
    return "\n".join(f"{k}={json.dumps(report.get(k), default=str)}" for k in keys)


def test_every_fault_happened(report) -> None:
    assert report["accepted"] > 0 and report["kills"] >= CONFIG.kills, summary(report)
    assert all(n >= 1 for n in report["kills_by_service"].values()), summary(report)
    assert {o["server"] for o in report["outages"]} == {"kafka", "postgres", "redis"}


def test_no_accepted_purchase_is_lost(report) -> None:
    assert report["lost"] == 0 and report["decided"] == report["accepted"], summary(report)


def test_no_incident_is_alerted_twice(report) -> None:
    assert report["alerts"] >= CONFIG.attackers, summary(report)
    assert report["alerts_duplicated"] == 0, summary(report)


def test_no_purchase_gets_two_different_decisions(report) -> None:
    """A purchase redelivered after a kill or a rebalance whose decision is already on the
    topic is not decided again (``streams/redelivery.py``): no purchase has two decisions
    that differ, in verdict or in scores."""
    assert report["duplicated"] == 0, (report["duplicated_features"],
                                       report["duplicated_examples"])
