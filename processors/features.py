"""The feature API: names, per-purchase features, state updates and an in-memory engine.

Live streams (Faust tables holding the states), replay and training all call these same
functions, so features cannot drift between training and serving. See README.md for the
meaning and unit of every feature.
"""

from __future__ import annotations

from collections.abc import Mapping

from processors.apply import (
    DEFAULT_CONFIG,
    FeatureConfig,
    LateEventError,
    Record,
    apply_auth,
    apply_purchase,
    apply_transfer,
    check_lateness,
    token_key,
)
from processors.compute import FEATURE_NAMES, purchase_features
from processors.signals import MISSING
from processors.state import (
    ENTITY_RETENTION_MS,
    PURCHASE_RETENTION_MS,
    SLACK_MS,
    EntityState,
    ShowState,
    WalletState,
)
from processors.timeutil import HOUR_MS, to_ms

__all__ = [
    "DEFAULT_CONFIG",
    "FEATURE_NAMES",
    "MISSING",
    "FeatureConfig",
    "FeatureEngine",
    "LateEventError",
    "apply_auth",
    "apply_purchase",
    "apply_transfer",
    "feature_vector",
    "purchase_features",
    "token_key",
]

KINDS = ("purchase", "auth", "transfer")
ZERO_ADDRESS = "0x" + "0" * 40
SWEEP_EVERY_MS = HOUR_MS


def feature_vector(features: Mapping[str, float]) -> list[float]:
    """The features as a row in ``FEATURE_NAMES`` order (the model's column order)."""
    return [features[name] for name in FEATURE_NAMES]


class FeatureEngine:
    """An in-memory driver over dicts of states, for replay, training data and tests.

    ``process(kind, record)`` with kind "purchase", "auth" or "transfer" applies the record
    and, for purchases, returns the features computed BEFORE applying it. Deterministic: the
    same records in the same order give the same features. Raises ``LateEventError`` for an
    event beyond the allowed lateness, leaving every state untouched.

    Wallet states are kept for the engine's lifetime (each is bounded); IP, device and card
    states idle for more than a day, and show states idle for more than a week, are dropped
    as the event clock advances, so memory stays flat over long simulated spans.
    """

    def __init__(self, config: FeatureConfig | None = None) -> None:
        self.config = config or DEFAULT_CONFIG
        self.wallets: dict[str, WalletState] = {}
        self.ips: dict[str, EntityState] = {}
        self.devices: dict[str, EntityState] = {}
        self.cards: dict[str, EntityState] = {}
        self.shows: dict[str, ShowState] = {}
        self.watermark_ms = 0
        self._swept_ms = 0

    def process(self, kind: str, record: Record) -> dict[str, float] | None:
        if kind == "purchase":
            return self._purchase(record)
        if kind == "auth":
            self._auth(record)
        elif kind == "transfer":
            self._transfer(record)
        else:
            raise ValueError(f"unknown record kind {kind!r} (expected one of {KINDS})")
        return None

    def _wallet(self, address: str) -> WalletState:
        wallet = self.wallets.get(address)
        if wallet is None:
            wallet = self.wallets[address] = WalletState(address=address)
        return wallet

    @staticmethod
    def _entity(states: dict[str, EntityState], key: str | None) -> EntityState | None:
        if key is None:
            return None
        state = states.get(key)
        if state is None:
            state = states[key] = EntityState()
        return state

    def _purchase(self, p: Record) -> dict[str, float]:
        wallet = self._wallet(p["wallet"])
        ts = to_ms(p["occurred_at"])
        assert ts is not None
        check_lateness("purchase", ts, wallet, self.config.allowed_lateness_ms)
        ip = self._entity(self.ips, p["ip"])
        device = self._entity(self.devices, p.get("device_id"))
        card = self._entity(self.cards, p.get("card_fingerprint"))
        show = self.shows.get(p["show_id"])
        if show is None:
            show = self.shows[p["show_id"]] = ShowState()
        features = purchase_features(p, wallet, ip, device, card, show, self.config)
        apply_purchase(p, wallet, ip, device, card, show, self.config)
        self._advance(ts)
        return features

    def _auth(self, event: Record) -> None:
        address = event.get("wallet")
        if not address:
            return  # user-only auth events carry no wallet state
        apply_auth(event, self._wallet(address), self.config)
        self._advance(to_ms(event["occurred_at"]) or 0)

    def _transfer(self, transfer: Record) -> None:
        ts = to_ms(transfer["block_time"]) or 0
        sides = {transfer["to_address"].lower(), transfer["from_address"].lower()}
        wallets = [self._wallet(a) for a in sorted(sides - {ZERO_ADDRESS})]
        for wallet in wallets:  # all-or-nothing: check every side before applying any
            check_lateness("transfer", ts, wallet, self.config.chain_lateness_ms)
        for wallet in wallets:
            apply_transfer(transfer, wallet, self.config)
        self._advance(ts)

    def _advance(self, ts: int) -> None:
        self.watermark_ms = max(self.watermark_ms, ts)
        if self.watermark_ms - self._swept_ms >= SWEEP_EVERY_MS:
            self.sweep()

    def sweep(self) -> None:
        """Drop entity and show states that have been idle beyond their longest window."""
        for states in (self.ips, self.devices, self.cards):
            cutoff = self.watermark_ms - ENTITY_RETENTION_MS - SLACK_MS
            for key in [k for k, s in states.items() if s.watermark_ms <= cutoff]:
                del states[key]
        cutoff = self.watermark_ms - PURCHASE_RETENTION_MS - SLACK_MS
        for key in [k for k, s in self.shows.items() if s.watermark_ms <= cutoff]:
            del self.shows[key]
        self._swept_ms = self.watermark_ms
