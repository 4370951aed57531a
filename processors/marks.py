"""Confirmed fraud as state: labels mark the wallet, card, device and account of a purchase.

A label (a chargeback, a review outcome) names a purchase; ``mark_record(label, purchase)``
turns it into a mark record naming the entities that purchase used (its ``mark_keys``):
``wallet:<address>``, ``card:<fingerprint>``, ``device:<id>``, ``account:<user id>`` (the
purchase carries the account, not the e-mail address: the account stands for it).
``MarkStore.apply(record)`` keeps the latest label of each purchase (by label time; at the
same instant a review beats a chargeback) and, per entity key, the purchases confirmed as
fraud. A correction (a review overturning a chargeback) removes the purchase's marks.

Queries are as of an event time ``t``: only marks whose label arrived strictly before ``t``
count, so a purchase never sees a label from its own future (nor its own label). Pure: no
Kafka, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from processors.entity_state import EntityStore
from processors.records import Order
from processors.timeutil import DAY_MS, to_ms

KINDS = ("wallet", "card", "device", "account")
MARK_FEATURES: tuple[str, ...] = (
    "fraud_marks_wallet", "fraud_marks_card", "fraud_marks_device", "fraud_marks_account",
    "fraud_marks_cluster", "days_since_fraud_mark",
)
JOIN_HORIZON_MS = 120 * DAY_MS  # labels later than this after their purchase mark nothing
FIELDS = {"wallet": "wallet", "card": "card_fingerprint", "device": "device_id",
          "account": "user_id"}
# At the same label time, the more deliberate source wins (a review corrects a chargeback).
SOURCE_RANK = {"SIMULATOR": 0, "CHARGEBACK": 1, "MANUAL_REVIEW": 2}
MISSING = -1.0

Record = Mapping[str, Any]


def mark_keys(purchase: Record) -> list[str]:
    """The entity keys a purchase used (those present)."""
    return [f"{kind}:{purchase[f]}" for kind, f in FIELDS.items() if purchase.get(f)]


def mark_record(label: Record, purchase: Record) -> dict[str, Any]:
    """The value of a fraud-marks record: the label joined with its purchase's entities."""
    return {"purchase_id": label["purchase_id"], "keys": mark_keys(purchase),
            "is_fraud": bool(label["is_fraud"]), "source": str(label["source"]),
            "label_ms": to_ms(label["occurred_at"]), "purchase_ms": to_ms(purchase["occurred_at"])}


def _order(record: Record) -> tuple[int, int]:
    return (int(record["label_ms"]), SOURCE_RANK.get(record["source"], 0))


class MarkStore:
    """Per entity key, the purchases confirmed as fraud and when the label arrived."""

    def __init__(self) -> None:
        self.latest: dict[str, Record] = {}  # purchase id -> its effective mark record
        self.by_key: dict[str, dict[str, int]] = {}  # key -> {purchase id: label ms}

    def __len__(self) -> int:
        return len(self.by_key)

    def apply(self, record: Record) -> bool:
        """Apply one mark record; False when an equal or later label is already applied."""
        pid = record["purchase_id"]
        previous = self.latest.get(pid)
        if previous is not None and _order(record) <= _order(previous):
            return False
        if previous is not None:
            self._unmark(previous)
        self.latest[pid] = record
        if record["is_fraud"]:
            for key in record["keys"]:
                self.by_key.setdefault(key, {})[pid] = int(record["label_ms"])
        return True

    def _unmark(self, record: Record) -> None:
        for key in record["keys"]:
            marks = self.by_key.get(key)
            if marks is not None:
                marks.pop(record["purchase_id"], None)
                if not marks:
                    del self.by_key[key]

    def prior(self, key: str, t_ms: int) -> tuple[int, int | None]:
        """(confirmed frauds on ``key`` labelled before ``t_ms``, the latest label time)."""
        return _prior(self.by_key.get(key), t_ms)

    def features(self, purchase: Record, linked_wallets: Iterable[str], t_ms: int) -> dict:
        """Prior confirmed fraud on the purchase's wallet, card, device, account and linked
        cluster (other wallets sharing its IP, device or card in 24 h; 0 for an absent
        field), days since the latest such mark (``MISSING`` when none). Keys without any
        mark (nearly all) cost one dict lookup."""
        out, latest, by_key = {}, None, self.by_key
        for kind, field in FIELDS.items():
            value = purchase.get(field)
            count, last = _prior(by_key.get(f"{kind}:{value}"), t_ms) if value else (0, None)
            out[f"fraud_marks_{kind}"] = float(count)  # an absent entity carries no mark
            latest = last if latest is None or (last is not None and last > latest) else latest
        cluster, wallet = 0, purchase["wallet"]
        for other in linked_wallets:
            marks = by_key.get(f"wallet:{other}") if other != wallet else None
            if marks:
                count, last = _prior(marks, t_ms)
                cluster += count > 0
                latest = last if latest is None or (last is not None and last > latest) else latest
        out["fraud_marks_cluster"] = float(cluster)
        out["days_since_fraud_mark"] = MISSING if latest is None else (t_ms - latest) / DAY_MS
        return out


def _prior(marks: Mapping[str, int] | None, t_ms: int) -> tuple[int, int | None]:
    if not marks:
        return 0, None
    times = [ms for ms in marks.values() if ms < t_ms]
    return len(times), max(times, default=None)


def purchase_cluster(entities: EntityStore, o: Order) -> str:
    """The cluster id of a purchase (read as ``o``): its 1-hop cluster, the wallets seen with
    its IP, device or card in the 24 h before it (``EntityStore``), this wallet included."""
    return cluster_id(o.wallet, (entities.cluster_min(o),))


def cluster_id(wallet: str, linked_wallets: Iterable[str]) -> str:
    """A stable name for a purchase's linked-wallet cluster: its smallest wallet address
    (members of a ring that share an IP, device or card get the same one)."""
    return f"cluster:{min({wallet, *linked_wallets})}"


def mark_row(purchase: Record, marks: MarkStore | None, linked: Callable[[], Iterable[str]],
             ts: int) -> tuple[float, ...]:
    """``MARK_FEATURES`` in order (``marks`` None or empty: nothing confirmed yet, no work);
    ``linked()`` gives the purchase's linked cluster (``EntityStore.linked_wallets``), asked
    only when there are marks."""
    if not marks:
        return NO_MARK_ROW
    got = marks.features(purchase, linked(), ts)
    return tuple(got[name] for name in MARK_FEATURES)


def order_mark_row(purchase: Record, marks: MarkStore | None, entities: EntityStore,
                   o: Order) -> tuple[float, ...]:
    """``mark_row`` of a purchase read as ``o``, its cluster from ``entities``; no mark at all
    (the common case) returns at once, without building the ``linked`` callable."""
    if marks is None or not marks.by_key:
        return NO_MARK_ROW
    return mark_row(purchase, marks, lambda: entities.linked_wallets(o), o.ts)


class MarkJoin:
    """Labels joined with the purchases of the same stream (replay and training, where the
    labels come in event time with the purchases): ``remember(purchase)``, ``label(label)``.
    Purchases are kept ``JOIN_HORIZON_MS`` of event time, only what a mark needs."""

    def __init__(self) -> None:
        self.store = MarkStore()
        # purchase id -> the values of KEPT_FIELDS (a tuple per purchase: one is kept for every
        # purchase, a label comes for few; the dict is made when one does)
        self.purchases: dict[str, tuple] = {}
        self._swept_ms = 0

    def remember(self, purchase: Record) -> None:
        """Keep the values of ``KEPT_FIELDS`` (``purchase.get`` of each, in order: five calls cost
        half of ``tuple(map(purchase.get, KEPT_FIELDS))``'s iterator, and this runs every purchase)."""
        get = purchase.get
        self.purchases[purchase["purchase_id"]] = (
            get("occurred_at"), get("wallet"), get("card_fingerprint"), get("device_id"),
            get("user_id"),
        )  # fmt: skip

    def label(self, label: Record) -> None:
        kept = self.purchases.get(label["purchase_id"])
        if kept is not None:
            self.store.apply(mark_record(label, dict(zip(KEPT_FIELDS, kept, strict=True))))
        now = to_ms(label["occurred_at"]) or 0
        if now - self._swept_ms > DAY_MS:
            cutoff = now - JOIN_HORIZON_MS
            self.purchases = {k: v for k, v in self.purchases.items()
                              if (to_ms(v[0]) or 0) > cutoff}
            self._swept_ms = now


KEPT_FIELDS = ("occurred_at", *FIELDS.values())  # what MarkJoin keeps of a purchase, in order
# ``MarkJoin.remember`` reads them by name
assert KEPT_FIELDS == ("occurred_at", "wallet", "card_fingerprint", "device_id", "user_id")


NO_MARK_ROW = (0.0, 0.0, 0.0, 0.0, 0.0, MISSING)  # no mark anywhere (MISSING: no days since)
