"""What a simulation looks like: size, seed, fraud rate and the mix of fraud patterns."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

PATTERNS: tuple[str, ...] = (
    "scalper_bot",
    "slow_scalper",
    "card_testing",
    "distributed_card_testing",
    "device_farm",
    "account_takeover",
    "fraud_ring",
    "impossible_travel",
    "friendly_fraud",
)
# Friendly fraud (a real customer disputes a real purchase) looks legit by construction: it is
# labelled fraud but reported apart and left out of training positives.
FRIENDLY = "friendly_fraud"
CURRENCY_MIX = ("USD", "EUR", "GBP", "MXN", "BRL", "JPY")


def _default_mix() -> dict[str, float]:
    return {
        "scalper_bot": 0.12,
        "slow_scalper": 0.15,
        "card_testing": 0.1,
        "distributed_card_testing": 0.13,
        "device_farm": 0.12,
        "account_takeover": 0.14,
        "fraud_ring": 0.1,
        "impossible_travel": 0.08,
        "friendly_fraud": 0.06,
    }


@dataclass(frozen=True)
class SimConfig:
    """One simulation. The same config (seed included) gives the same records."""

    seed: int = 7
    days: int = 14
    start: datetime = datetime(2025, 3, 3, tzinfo=UTC)
    n_users: int = 20_000
    n_shows: int = 150
    n_organizers: int = 12
    # Mean legit purchases per user and day (individual rates vary around it).
    purchase_rate: float = 0.08
    # Share of all purchases that are fraud.
    fraud_rate: float = 0.015
    pattern_mix: dict[str, float] = field(default_factory=_default_mix)
    resale_share: float = 0.08  # legit purchases bought on the resale channel
    list_share: float = 0.08  # legit primary purchases later listed for resale
    travel_prob: float = 0.03  # a user is away from home on a given day
    currencies: tuple[str, ...] = CURRENCY_MIX  # organizers' currencies, in turn
    # On-sale crowds: groups of new accounts behind one NAT (campus, venue) or a carrier,
    # per popular sale opening (mean groups per opening).
    crowd_groups: float = 1.5
    vip_share: float = 0.03  # primary orders in a VIP tier (5-10x the base price)
    chain_id: int = 31337
    # Labels: legit purchases settle after this; card fraud is charged back after days.
    legit_label_delay_days: float = 7.0
    chargeback_median_days: float = 12.0

    def __post_init__(self) -> None:
        unknown = set(self.pattern_mix) - set(PATTERNS)
        if unknown:
            raise ValueError(f"unknown fraud patterns: {sorted(unknown)}")
        if not 0 <= self.fraud_rate < 0.5:
            raise ValueError("fraud_rate must be in [0, 0.5)")
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC)")

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)
