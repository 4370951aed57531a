"""Pure pieces of the console: IP masking, money, latency percentiles from the rollup
histogram, confusion and side-by-side rates, gateway rates from Prometheus samples."""

from __future__ import annotations

import math
from collections import deque
from datetime import UTC, datetime, timedelta

import pytest

from connectors.console.principal import Principal, for_principal, mask_ips
from connectors.console.queries.kpis import (
    LATENCY_BASE_MS,
    LATENCY_RATIO,
    overlay,
    percentile,
    windows,
)
from connectors.console.queries.model import confusion, flat_metrics, side_by_side
from connectors.console.render import age, money
from connectors.console.sampler import gateway_counts, per_minute
from connectors.decision_wait import TooManyWaits, WaitSlots

pytestmark = pytest.mark.unit


def test_ips_are_masked_at_any_depth_and_nothing_else_is() -> None:
    value = {"detail": "IP 203.0.113.7 is blocklisted", "list": ["2001:db8::1", "12:30:45"],
             "n": 3, "version": "v1.2.3.4.5", "ratio": "1.5"}  # fmt: skip
    masked = mask_ips(value)
    assert masked == {"detail": "IP 203.0.113.0/24 is blocklisted", "list": ["2001:db8::/48", "12:30:45"],
                      "n": 3, "version": "v1.2.3.4.5", "ratio": "1.5"}  # fmt: skip


def test_only_viewers_get_masked_values() -> None:
    data = {"ip": "198.51.100.23"}
    assert for_principal(Principal("v", "viewer", "key"), data) == {"ip": "198.51.100.0/24"}
    assert for_principal(Principal("a", "analyst", "key"), data) == data
    assert Principal("a", "admin", "session").can("analyst")
    assert not Principal("v", "viewer", "session").can("analyst")


def test_money_is_exact_in_the_currency_minor_unit() -> None:
    assert money(123456, "EUR") == "1,234.56 EUR"
    assert money(123456, "JPY") == "123,456 JPY"
    assert money(1234567, "KWD") == "1,234.567 KWD"
    assert money(None) == "-"


def test_age_reads_like_a_clock() -> None:
    now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    assert age(now - timedelta(seconds=42), now) == "42s"
    assert age(now - timedelta(minutes=3, seconds=5), now) == "3m 5s"
    assert age(now - timedelta(hours=2, minutes=7), now) == "2h 7m"
    assert age(now - timedelta(days=3, hours=4), now) == "3d 4h"


def test_percentile_lands_in_the_bucket_of_the_true_value() -> None:
    latencies = [5.0] * 50 + [40.0] * 45 + [900.0] * 5
    hist: dict[int, int] = {}
    for ms in latencies:
        bucket = math.floor(math.log(ms / LATENCY_BASE_MS) / math.log(LATENCY_RATIO))
        hist[bucket] = hist.get(bucket, 0) + 1
    for q, true in ((0.5, 5.0), (0.95, 40.0), (0.99, 900.0)):
        assert abs(percentile(hist, q) - true) / true < LATENCY_RATIO - 1
    assert percentile({}, 0.5) is None


def test_windows_are_hour_aligned_and_include_the_current_hour() -> None:
    prev, start, end = windows(datetime(2026, 11, 2, 12, 30, 45, tzinfo=UTC))
    assert end == datetime(2026, 11, 2, 13, 0, tzinfo=UTC)
    assert (end - start, start - prev) == (timedelta(hours=24), timedelta(hours=24))


def test_overlay_puts_each_hour_beside_the_same_hour_a_day_before() -> None:
    start = datetime(2026, 11, 2, 13, 0, tzinfo=UTC)
    hourly = [
        {"hour": datetime(2026, 11, 2, 14, tzinfo=UTC), "purchases": 7, "revenue_minor": {"EUR": 500}},
        {"hour": datetime(2026, 11, 1, 14, tzinfo=UTC), "purchases": 3, "revenue_minor": {"EUR": 100}},
    ]
    series = overlay(hourly, start)["series"]
    assert series["purchases"]["current"][1] == 7 and series["purchases"]["previous"][1] == 3
    assert series["revenue:EUR"]["current"][1] == 500


def test_confusion_counts_flagged_as_review_or_block() -> None:
    rows = [
        {"decision": "BLOCKED", "is_fraud": True, "n": 8},
        {"decision": "MANUAL_REVIEW", "is_fraud": False, "n": 2},
        {"decision": "APPROVED", "is_fraud": True, "n": 2},
        {"decision": "APPROVED", "is_fraud": False, "n": 88},
    ]
    out = confusion(rows)
    assert (out["tp"], out["fp"], out["fn"], out["labels"]) == (8, 2, 2, 100)
    assert out["precision"] == 0.8 and out["recall"] == 0.8
    assert out["matrix"]["APPROVED"] == {"fraud": 2, "legit": 88}


def test_side_by_side_compares_only_what_the_challenger_scored() -> None:
    rows = [
        {"model_flag": True, "challenger_flag": 1, "is_fraud": True, "n": 4},
        {"model_flag": False, "challenger_flag": 1, "is_fraud": True, "n": 1},
        {"model_flag": True, "challenger_flag": -1, "is_fraud": False, "n": 5},
    ]
    out = side_by_side(rows)
    assert out["champion"] == {"labels": 10, "precision": 4 / 9, "recall": 0.8}
    assert out["challenger"] == {"labels": 5, "precision": 1.0, "recall": 1.0}


def test_flat_metrics_keeps_numbers_only() -> None:
    assert flat_metrics({"holdout": {"auc": 0.9, "per": {"x": 1.0}, "ok": True}, "n": 3}) == {
        "holdout.auc": 0.9, "holdout.per.x": 1.0, "n": 3}  # fmt: skip


def test_gateway_rates_per_minute_from_counter_samples() -> None:
    text = ('sentinel_gateway_requests_total{endpoint="purchases",status="202"} 10.0\n'
            'sentinel_gateway_requests_total{endpoint="labels",status="202"} 2.0\n'
            'sentinel_gateway_requests_total{endpoint="purchases",status="429"} 1.0\n')  # fmt: skip
    assert gateway_counts(text) == {"202": 12.0, "429": 1.0}
    samples = deque([(0.0, {"202": 12.0}), (30.0, {"202": 42.0, "429": 3.0}),
                     (60.0, None), (90.0, {"202": 5.0})])  # fmt: skip
    rows = per_minute(samples)
    assert rows[0]["per_min"] == {"202": 60.0, "429": 6.0}
    assert len(rows) == 1  # a gap (gateway down) gives no rate


def test_wait_slots_cap_each_client() -> None:
    slots = WaitSlots(2)
    with slots.hold("a"), slots.hold("a"):
        with pytest.raises(TooManyWaits), slots.hold("a"):
            pass
        with slots.hold("b"):
            pass
    with slots.hold("a"), slots.hold("a"):
        pass
