"""``FeatureEngine``'s purchase step as Python glue, as it was before it became one native call
(frozen, do not edit): ``PythonStepEngine`` is ``processors.features.FeatureEngine`` with the
former ``_purchase``, ``_wallet`` and ``_filed`` (branch pstep14 replaced them by
``PURCHASES.into``, ``processors/native/src/purchase.rs``).
``tests/unit/test_native_purchase_step.py`` runs both."""

from __future__ import annotations

from processors.apply import EVENTS, Record, apply_order, check_lateness
from processors.compute import order_features
from processors.crowd import read_purchase
from processors.entity_state import apply_stores
from processors.features import FeatureEngine
from processors.state import WalletState


class PythonStepEngine(FeatureEngine):
    def _wallet(self, address: str) -> WalletState:
        return EVENTS.wallet_in(self.wallets, address)

    def _purchase(self, p: Record) -> tuple[float, ...]:
        o, read = read_purchase(p)
        wallet = self._wallet(o.wallet)
        try:
            check_lateness("purchase", o.ts, wallet, self.config.allowed_lateness_ms)
        finally:  # the live replica applies late purchases too
            apply_stores(self.entities, self.crowds, o, read)
        row = order_features(o, p, wallet, self.entities, self.config, self.crowds, read,
                             self.marks.store)
        self.marks.remember(p)
        apply_order(o, wallet, self.config)
        self._filed(wallet)
        if o.ts > self.watermark_ms:
            self._advance(o.ts)
        return row

    def _filed(self, wallet: WalletState) -> None:
        EVENTS.file(wallet, self._wheel)
