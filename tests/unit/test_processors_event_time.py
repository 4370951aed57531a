"""A single future-dated purchase cannot move a wallet's high-water mark beyond its ingest
time plus the allowed skew, so it cannot make the wallet's later purchases "late"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from processors.features import FeatureConfig, apply_purchase
from processors.state import WalletState

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WALLET = "0x" + "a" * 40


def purchase(n: int, occurred: datetime, ingested: datetime | None) -> dict:
    return {
        "purchase_id": f"p-{n}", "occurred_at": occurred, "ingested_at": ingested,
        "wallet": WALLET, "show_id": "show-1", "ticket_id": f"t-{n}", "quantity": 1,
        "unit_price_minor": 5_000, "payment_method": "CARD", "channel": "PRIMARY",
        "ip": "203.0.113.7",
    }  # fmt: skip


def test_a_future_outlier_does_not_make_later_purchases_late() -> None:
    wallet = WalletState()
    apply_purchase(purchase(1, T0 + timedelta(hours=23), ingested=T0), wallet)
    later = T0 + timedelta(minutes=1)
    apply_purchase(purchase(2, later, ingested=later), wallet)  # not late
    assert wallet.purchases_total == 2
    skew = FeatureConfig().max_future_skew_ms
    assert wallet.mark("purchase") == int(T0.timestamp() * 1000) + skew  # not T0 + 23 h


def test_without_ingest_time_the_event_time_is_the_mark() -> None:
    wallet = WalletState()
    apply_purchase(purchase(1, T0, ingested=None), wallet)
    assert wallet.mark("purchase") == int(T0.timestamp() * 1000)


def test_the_skew_is_configurable_and_bounded() -> None:
    config = FeatureConfig(max_future_skew_ms=0)
    wallet = WalletState()
    apply_purchase(purchase(1, T0 + timedelta(hours=1), ingested=T0), wallet,
                   config=config)  # fmt: skip
    assert wallet.mark("purchase") == int(T0.timestamp() * 1000)
    with pytest.raises(ValueError, match="max_future_skew_ms"):
        FeatureConfig(max_future_skew_ms=-1)
