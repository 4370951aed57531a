"""``FeatureEngine``'s per-event glue as it was before its fast paths (frozen, do not edit):
``ReferenceEngine`` is ``processors.features.FeatureEngine`` with the former ``_wallet``,
``_purchase``, ``_auth``, ``_transfer``, ``_filed`` and ``_advance``, the former
``read_transfer`` and ``MarkJoin.remember``. ``tests/unit/test_engine_glue.py`` runs both.
(The crowd calls in ``_purchase`` follow the crowd API they call: ``crowd_read`` replaced
``crowd_keyed``, its dict of keys, in branch crowdfuse, and ``order_crowd_row``, which
``CrowdStore.apply_order`` replaced, is the frozen one; the glue frozen here is the rest.)"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from processors.apply import apply_auth_at, apply_order, apply_read_transfer, check_lateness
from processors.compute import order_features
from processors.crowd import crowd_read
from processors.expiry import SWEEP_EVERY_MS, due_ms
from processors.features import ZERO_ADDRESS, FeatureEngine
from processors.marks import KEPT_FIELDS, MarkJoin
from processors.records import Transfer, read_order, token_key
from processors.state import WalletState
from processors.timeutil import to_ms
from tests.support.crowd_reference import order_crowd_row

Record = Mapping[str, Any]


def read_transfer(t: Mapping[str, Any]) -> Transfer:
    ts = to_ms(t["block_time"])
    assert ts is not None
    token = t["token_id"]
    return Transfer(ts, t["to_address"].lower(), t["from_address"].lower(),
                    f"{t['tx_hash']}:{t['log_index']}:{token}", token_key(t["contract"], token),
                    t["kind"])


class ReferenceMarkJoin(MarkJoin):
    def remember(self, purchase: Record) -> None:
        self.purchases[purchase["purchase_id"]] = tuple(map(purchase.get, KEPT_FIELDS))


class ReferenceEngine(FeatureEngine):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.marks = ReferenceMarkJoin()

    def _wallet(self, address: str) -> WalletState:
        wallet = self.wallets.get(address)
        if wallet is None:
            wallet = self.wallets[address] = WalletState(address=address)
        return wallet

    def _purchase(self, p: Record) -> tuple[float, ...]:
        o = read_order(p)
        read = crowd_read(p, o.unit)
        wallet = self._wallet(o.wallet)
        try:
            check_lateness("purchase", o.ts, wallet, self.config.allowed_lateness_ms)
        finally:
            self.entities.apply_order(o)  # the live replica applies late purchases too
            self.crowds.apply_row(o.purchase_id, order_crowd_row(o), read.keys)
        row = order_features(o, p, wallet, self.entities, self.config, self.crowds, read,
                             self.marks.store)
        self.marks.remember(p)
        apply_order(o, wallet, self.config)
        self._filed(wallet)
        self._advance(o.ts)
        return row

    def _auth(self, event: Record) -> None:
        address = event.get("wallet")
        if not address:
            return  # user-only auth events carry no wallet state
        wallet = self._wallet(address)
        ts = to_ms(event["occurred_at"])
        assert ts is not None
        check_lateness("auth", ts, wallet, self.config.allowed_lateness_ms)
        apply_auth_at(event, ts, wallet)
        self._filed(wallet)
        self._advance(ts)

    def _transfer(self, record: Record) -> None:
        t = read_transfer(record)
        receiver, sender = t.receiver, t.sender
        sides = (receiver,) if receiver == sender else (
            (receiver, sender) if receiver < sender else (sender, receiver))
        wallets = [self._wallet(a) for a in sides if a != ZERO_ADDRESS]  # in address order
        for wallet in wallets:  # all-or-nothing: check every side before applying any
            check_lateness("transfer", t.ts, wallet, self.config.chain_lateness_ms)
        for wallet in wallets:
            apply_read_transfer(t, wallet)
            self._filed(wallet)
        self._advance(t.ts)

    def _filed(self, wallet: WalletState) -> None:
        self._wheel.file(wallet.address, due_ms(wallet))

    def _advance(self, ts: int) -> None:
        if ts > self.watermark_ms:
            self.watermark_ms = ts
            if ts - self._swept_ms >= SWEEP_EVERY_MS:
                self.sweep()
