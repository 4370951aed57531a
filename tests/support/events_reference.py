"""Admitting and applying auth events and chain transfers as Python did it before it moved to
native code (``processors/native/src/events.rs``, ``EventAdmission``, ``TransferReader`` and
``ExpiryWheel``): a frozen copy of ``processors/apply.py``'s ``check_lateness``,
``apply_auth`` and ``apply_transfer``, of ``processors/records.py``'s ``read_transfer`` and
``token_key``, and of ``processors/expiry.py``'s ``is_summary``, ``worth_keeping``, ``due_ms``
and ``ExpiryWheel``, as of commit 810f2fd. Do not change it: it is what ``tests/unit/test_native_events.py`` holds the
native code to. The applies themselves are ``processors.apply``'s (``apply_auth_at``,
``apply_read_transfer``), which ``tests/unit/test_native_wallet_updates.py`` holds to theirs.
"""

from __future__ import annotations

from processors.apply import (
    DEFAULT_CONFIG,
    FeatureConfig,
    LateEventError,
    Record,
    apply_auth_at,
    apply_read_transfer,
)
from processors.expiry import (
    SUMMARY_APPLIED_CAP,
    TOKEN_IDLE_MS,
    WALLET_IDLE_MS,
    deleted_by,
)
from processors.records import Transfer
from processors.state import WalletState
from processors.timeutil import HOUR_MS, to_ms


def read_transfer(t: Record) -> Transfer:
    ts = to_ms(t["block_time"])
    assert ts is not None
    token = t["token_id"]
    return Transfer(
        ts,
        t["to_address"].lower(),
        t["from_address"].lower(),
        f"{t['tx_hash']}:{t['log_index']}:{token}",
        token_key(t["contract"], token),
        t["kind"],
    )


def token_key(contract: str, token_id: str) -> str:
    return f"{contract.lower()}:{token_id}"


def check_lateness(kind: str, ts_ms: int, wallet: WalletState, lateness_ms: int) -> None:
    idle = wallet.watermark_ms and ts_ms - wallet.watermark_ms >= WALLET_IDLE_MS
    if idle and deleted_by(wallet, ts_ms):  # only an idle wallet can be deleted
        wallet.forget()
    mark = wallet.marks.get(kind, 0)
    if mark and ts_ms < mark - lateness_ms:
        raise LateEventError(kind, wallet.address, ts_ms, mark, lateness_ms)


def apply_auth(event: Record, wallet: WalletState, config: FeatureConfig = DEFAULT_CONFIG) -> None:
    ts = to_ms(event["occurred_at"])
    assert ts is not None
    wallet.address = wallet.address or (event.get("wallet") or "")
    check_lateness("auth", ts, wallet, config.allowed_lateness_ms)
    apply_auth_at(event, ts, wallet)


def apply_transfer(
    transfer: Record, wallet: WalletState, config: FeatureConfig = DEFAULT_CONFIG
) -> None:
    t = read_transfer(transfer)
    wallet.address = wallet.address or t.receiver
    check_lateness("transfer", t.ts, wallet, config.chain_lateness_ms)
    apply_read_transfer(t, wallet)


def is_summary(wallet: WalletState) -> bool:
    return not (wallet.purchases or wallet.geo_points or wallet.failed_logins
                or wallet.mfa_failures or len(wallet.applied) > SUMMARY_APPLIED_CAP)  # fmt: skip


def worth_keeping(summary: WalletState) -> bool:
    return bool(summary.purchases_total or summary.holdings or summary.fraud_marks
                or summary.devices or summary.mints or summary.sent or summary.resales
                or summary.wash_cycles)  # fmt: skip


def due_ms(wallet: WalletState) -> int | None:
    if not wallet.watermark_ms:
        return None
    idle = wallet.watermark_ms + WALLET_IDLE_MS
    if not is_summary(wallet) or not worth_keeping(wallet):
        return idle
    latest = max([r.ts_ms for r in wallet.resales] + wallet.wash_cycles, default=None)
    return None if latest is None else max(latest + TOKEN_IDLE_MS, idle)


class ExpiryWheel:
    def __init__(self, bucket_ms: int = HOUR_MS) -> None:
        self.bucket_ms = bucket_ms
        self.buckets: dict[int, set] = {}

    def file(self, key, due: int | None) -> None:
        if due is not None:
            bucket = self.buckets.get(due // self.bucket_ms)
            if bucket is None:
                bucket = self.buckets[due // self.bucket_ms] = set()
            bucket.add(key)

    def pop_due(self, now_ms: int) -> list:
        ready = sorted(b for b in self.buckets if (b + 1) * self.bucket_ms <= now_ms + 1)
        keys: list = []
        for b in ready:
            keys.extend(self.buckets.pop(b))
        return keys

    def __len__(self) -> int:
        return sum(map(len, self.buckets.values()))
