"""The feature API: names, per-purchase features, state updates and an in-memory engine.

Live streams (Faust tables holding the states), replay and training all call these same
functions, so features cannot drift between training and serving. See README.md for the
meaning and unit of every feature.
"""

from __future__ import annotations

from collections.abc import Mapping

from processors._native import PurchaseStep
from processors.apply import (
    DEFAULT_CONFIG,
    EVENTS,
    ZERO_ADDRESS,
    FeatureConfig,
    LateEventError,
    Record,
    apply_auth,
    apply_purchase,
    apply_transfer,
)
from processors.compute import FEATURE_NAMES, purchase_features, row_reader
from processors.crowd import PURCHASE_READER, crowd_store
from processors.entity_state import entity_store
from processors.expiry import EXPIRY_MARGIN_MS, SWEEP_EVERY_MS, ExpiryWheel, sweep
from processors.marks import KEPT_FIELDS, NO_MARK_ROW, MarkJoin, order_mark_row
from processors.records import token_key
from processors.signals import MISSING
from processors.state import WALLET_UPDATES, WalletState

__all__ = [
    "DEFAULT_CONFIG",
    "FEATURE_NAMES",
    "MISSING",
    "ZERO_ADDRESS",
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

KINDS = ("purchase", "auth", "transfer", "label")


# A purchase's whole step in FeatureEngine, in one native call
# (processors/native/src/purchase.rs): read (``read_purchase``), its wallet (``EVENTS.wallet_in``),
# admitted (``check_lateness``), applied to the stores late or not (``apply_stores``), its row
# (``order_features``: ``order_mark_row`` asked only when a fraud mark exists), kept for labels
# (``MarkJoin.remember``, by the same reads), applied (``apply_order``) and filed (``EVENTS.file``).
PURCHASES = PurchaseStep(reader=PURCHASE_READER, events=EVENTS, updates=WALLET_UPDATES,
                         mark_row=order_mark_row, no_marks=NO_MARK_ROW, kept=KEPT_FIELDS)


def feature_vector(features: Mapping[str, float]) -> list[float]:
    """The features as a row in ``FEATURE_NAMES`` order (the model's column order)."""
    return [features[name] for name in FEATURE_NAMES]


class FeatureEngine:
    """An in-memory driver over dicts of states, for replay, training data and tests.

    ``process(kind, record)`` with kind "purchase", "auth", "transfer" or "label" applies the
    record and, for purchases, returns the features computed BEFORE applying it (a label
    marks its purchase's wallet, card, device and account: ``processors.marks``). Deterministic: the
    same records in the same order give the same features. Raises ``LateEventError`` for an
    event beyond the allowed lateness, leaving every state untouched.

    Every wallet state is bounded, and idle wallets are summarised (or deleted when nothing
    is worth keeping) as the event clock advances, by the rules of ``processors/expiry.py``
    that the live worker's wallet table applies too; IP, device, card and show states live in
    an ``EntityStore`` (as the live worker's replica), which drops those idle beyond their
    windows. Memory stays flat over long simulated spans. A purchase
    too late for its wallet still counts for its IP, device, card and show, as live.
    """

    def __init__(self, config: FeatureConfig | None = None) -> None:
        self.config = config or DEFAULT_CONFIG
        self._rows = row_reader(self.config)  # the native reader of its rows
        self.wallets: dict[str, WalletState] = {}
        self.entities = entity_store()
        self.crowds = crowd_store()  # aggregates across wallets (processors.crowd)
        self.marks = MarkJoin()  # labels in the stream mark their purchases' entities
        self.watermark_ms = 0  # the largest event time seen: the clock of wallet expiry
        self._swept_ms = 0
        self._wheel = ExpiryWheel()

    def process(self, kind: str, record: Record) -> dict[str, float] | None:
        row = self.process_row(kind, record)
        return None if row is None else dict(zip(FEATURE_NAMES, row, strict=True))

    def process_row(self, kind: str, record: Record) -> tuple[float, ...] | None:
        """``process``, a purchase's features as a row in ``FEATURE_NAMES`` order (what
        ``decide_batch`` stacks into its matrix)."""
        if kind == "purchase":
            return self._purchase(record)
        if kind == "auth":
            self._auth(record)
        elif kind == "transfer":
            self._transfer(record)
        elif kind == "label":
            self.marks.label(record)
        else:
            raise ValueError(f"unknown record kind {kind!r} (expected one of {KINDS})")
        return None

    def _purchase(self, p: Record) -> tuple[float, ...]:
        """Read, admitted (a late purchase still applied to the IP, device, card, show and
        crowd stores, as live, then refused), its row made from the states before it, kept
        for labels, applied to its wallet and filed (``PURCHASES.into``, natively)."""
        row, ts = PURCHASES.into(p, self.wallets, self.entities, self.crowds, self.marks,
                                 self.config, self._rows, self._wheel)
        if ts > self.watermark_ms:
            self._advance(ts)
        return row

    def _auth(self, event: Record) -> None:
        """The event's wallet (none: nothing), admitted, applied and filed (``EVENTS.auth_into``,
        what the live worker's ``apply_auth`` does to its one wallet)."""
        ts = EVENTS.auth_into(event, self.wallets, self.config.allowed_lateness_ms, self._wheel)
        if ts is not None and ts > self.watermark_ms:
            self._advance(ts)

    def _transfer(self, record: Record) -> None:
        """Both sides (one for a mint, a burn or a wallet to itself; none for zero to zero), in
        address order, all-or-nothing: both admitted before either is applied, then filed
        (``EVENTS.transfer_into``, what the live worker's ``apply_transfer`` does to its one
        wallet)."""
        ts = EVENTS.transfer_into(record, self.wallets, self.config.chain_lateness_ms,
                                  self._wheel)
        if ts > self.watermark_ms:
            self._advance(ts)

    def _advance(self, ts: int) -> None:
        if ts > self.watermark_ms:
            self.watermark_ms = ts
            if ts - self._swept_ms >= SWEEP_EVERY_MS:
                self.sweep()

    def sweep(self) -> None:
        """Summarise or delete the wallets that expire by the watermark (``processors/expiry``)."""
        for address, summary in sweep(self._wheel, self.wallets.get,
                                      self.watermark_ms - EXPIRY_MARGIN_MS):
            if summary is None:
                del self.wallets[address]
            else:
                self.wallets[address] = summary
        self._swept_ms = self.watermark_ms
