"""Event-time expiry of whole wallets: which to summarise or delete, as of an event time.

A wallet idle past its longest window cannot contribute those windows to any later event:

- idle for ``WALLET_IDLE_MS`` (purchases 7 d + slack; geo 24 h and auth 1 h are shorter), it
  is reduced to its summary: first seen, lifetime purchase count and amount, last purchase,
  login / password / e-mail change times, stream marks, confirmed-fraud marks, and the maps
  whose features have no window or a longer one (holdings, devices 90 d, mints and sent tokens,
  whose entries the wallet's own pruning drops) plus the resales and wash cycles still inside
  their 30 d window, and the ids of its last ``SUMMARY_APPLIED_CAP`` records (a redelivery
  after a crash is still recognised). The rings go. A summary gives every later event the
  features the full state gives (``tests/unit/test_processors_expiry.py``);
- a wallet whose summary holds nothing worth keeping (never bought, holds nothing, no token
  history, no fraud mark: e.g. one seen only in auth events) is deleted. That forgets its
  first-seen and login times, so a later event sees a new wallet; ``check_lateness``
  (``processors/apply.py``) applies the same rule as of each event's own time, so every path
  (live, replay) sees the same wallet whenever its last sweep ran.

IP, device, card and show states expire in ``processors/entity_state.EntityStore``.

``expire`` decides (list in, list out); ``ExpiryWheel`` files keys by the event time from
which they may next change, so that a sweep looks at those only; ``sweep`` combines them.
Time is always event time: the caller's watermark minus ``EXPIRY_MARGIN_MS`` (input streams
are consumed at different speeds; an event that far behind the watermark is rare).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Self, TypeVar

from processors import _native
from processors.state import PURCHASE_RETENTION_MS, SLACK_MS, TOKEN_RETENTION_MS, WalletState
from processors.timeutil import HOUR_MS

K = TypeVar("K")

WALLET_IDLE_MS = PURCHASE_RETENTION_MS + SLACK_MS
TOKEN_IDLE_MS = TOKEN_RETENTION_MS + SLACK_MS
EXPIRY_MARGIN_MS = SLACK_MS
SWEEP_EVERY_MS = HOUR_MS
SUMMARY_APPLIED_CAP = 8  # record ids a summary keeps, to recognise a redelivery


# The rules every event and sweep ask, in native code (processors/native/src/events.rs), where
# the engine files a wallet without a Python call:
# - is_summary(wallet): nothing left that summarising would drop (rings empty, no more than
#   SUMMARY_APPLIED_CAP record ids);
# - worth_keeping(summary): it bought, holds, has token history (mints, sent, resales, wash
#   cycles), devices or a fraud mark;
# - due_ms(wallet): the event time from which ``expire`` may next change ``wallet`` (None:
#   never): none without a watermark; its idle time (watermark + WALLET_IDLE_MS) unless it is a
#   summary worth keeping; then the later of that and its latest resale or wash cycle plus
#   TOKEN_IDLE_MS (None without either).
RULES = _native.ExpiryRules(
    wallet_idle_ms=WALLET_IDLE_MS, token_idle_ms=TOKEN_IDLE_MS,
    summary_applied_cap=SUMMARY_APPLIED_CAP, wallet_state=WalletState,
)  # fmt: skip
is_summary = RULES.is_summary
worth_keeping = RULES.worth_keeping
due_ms = RULES.due_ms


def summarise(wallet: WalletState, now_ms: int) -> WalletState | None:
    """The wallet's summary as of ``now_ms`` (idle since ``now_ms - WALLET_IDLE_MS`` at
    least), or None when nothing in it is worth keeping."""
    cutoff = now_ms - TOKEN_IDLE_MS
    summary = WalletState(
        address=wallet.address, watermark_ms=wallet.watermark_ms, pruned_ms=wallet.pruned_ms,
        first_seen_ms=wallet.first_seen_ms, purchases_total=wallet.purchases_total,
        amount_total_minor=wallet.amount_total_minor, last_purchase_ms=wallet.last_purchase_ms,
        login_ok_ms=wallet.login_ok_ms, fails_before_login_ok=wallet.fails_before_login_ok,
        password_changed_ms=wallet.password_changed_ms, email_changed_ms=wallet.email_changed_ms,
        devices=dict(wallet.devices), holdings=dict(wallet.holdings), mints=dict(wallet.mints),
        sent=dict(wallet.sent), resales=[r for r in wallet.resales if r.ts_ms > cutoff],
        wash_cycles=[ts for ts in wallet.wash_cycles if ts > cutoff], marks=dict(wallet.marks),
        applied=wallet.applied[-SUMMARY_APPLIED_CAP:], fraud_marks=list(wallet.fraud_marks),
    )  # fmt: skip
    return summary if worth_keeping(summary) else None


_UNCHANGED = object()


def _expire_one(wallet: WalletState, now_ms: int) -> WalletState | None | object:
    if not wallet.watermark_ms or now_ms - wallet.watermark_ms < WALLET_IDLE_MS:
        return _UNCHANGED
    summary = summarise(wallet, now_ms)
    return _UNCHANGED if summary == wallet else summary


def expire(items: Iterable[tuple[K, WalletState]], now_ms: int
           ) -> list[tuple[K, WalletState | None]]:
    """The wallets that change as of event time ``now_ms``: (key, summary) or (key, None)
    to delete, in input order; the others are left out."""
    changes: list[tuple[K, WalletState | None]] = []
    for key, wallet in items:
        after = _expire_one(wallet, now_ms)
        if after is not _UNCHANGED:
            changes.append((key, after))  # type: ignore[arg-type]
    return changes


def deleted_by(wallet: WalletState, ts_ms: int) -> bool:
    """True when expiry deletes ``wallet`` by event time ``ts_ms`` (swept or not yet)."""
    return _expire_one(wallet, ts_ms) is None


class ExpiryWheel(_native.ExpiryWheel):
    """Keys filed by the hour (event time) from which they may next expire, so a sweep looks
    at those only. A key may be filed more than once; ``sweep`` re-checks each.

    In native code (``processors/native/src/events.rs``), where the engine files its wallets
    without a Python call: ``file(key, due)`` puts ``key`` in bucket ``due // bucket_ms``
    (nothing when ``due`` is None); ``pop_due(now_ms)`` takes the keys of the buckets that lie
    wholly at or before ``now_ms`` (bucket by bucket in time order, each in its set's order);
    ``buckets`` is the dict of bucket to set of keys; ``len`` counts the keys filed."""

    def __new__(cls, bucket_ms: int = HOUR_MS) -> Self:
        return super().__new__(cls, bucket_ms)


def may_change(watermark_ms: int, now_ms: int) -> bool:
    """False when ``expire`` leaves any wallet of this watermark unchanged at ``now_ms``."""
    return bool(watermark_ms) and now_ms - watermark_ms >= WALLET_IDLE_MS


def sweep(wheel: ExpiryWheel, lookup: Callable[[K], WalletState | None], now_ms: int
          ) -> list[tuple[K, WalletState | None]]:
    """Expire the keys of ``wheel`` due by ``now_ms``; re-file the others by their due time."""
    keys = dict.fromkeys(wheel.pop_due(now_ms))
    return _sweep_items(wheel, [(k, w) for k in keys if (w := lookup(k)) is not None], now_ms)


def sweep_read(
    wheel: ExpiryWheel, read: Callable[[list[K]], list[tuple[K, WalletState]]], now_ms: int
) -> list[tuple[K, WalletState | None]]:
    """``sweep`` with one ``read`` of all the keys due: it gives (key, wallet) in the order of
    the keys, leaving out the keys without a wallet. It may also leave out a key whose
    wallet ``may_change`` says no to and whose ``due_ms`` is filed already: ``sweep`` would
    find it unchanged and file it again where it is (a bucket after ``now_ms``), so the
    result and the wheel are the same."""
    return _sweep_items(wheel, read(list(dict.fromkeys(wheel.pop_due(now_ms)))), now_ms)


def _sweep_items(
    wheel: ExpiryWheel, items: list[tuple[K, WalletState]], now_ms: int
) -> list[tuple[K, WalletState | None]]:
    changes = expire(items, now_ms)
    after: dict[K, WalletState | None] = dict(items)
    after.update(changes)
    for key, wallet in after.items():
        if wallet is not None:
            wheel.file(key, due_ms(wallet))
    return changes
