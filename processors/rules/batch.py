"""A batch of purchases as columns, for rule expressions: the feature matrix (``FEATURE_NAMES``
order, float64), record fields as text columns (extracted on first use), and the blocklists.

    batch = RuleBatch(purchases, X, blocked_wallets={...}, blocked_ips={...})
    batch = RuleBatch.from_dicts(purchases, feature_dicts, ...)

A batch also memoises values that several rules share (``lower(user_agent)``, a parsed IP
column, a text column's distinct values) for the duration of one evaluation; ``subset(rows)``
is the same batch restricted to some rows (an organizer's rows, the rows whose reasons are
rendered). Text columns are read from plain dicts natively (``processors._native``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from operator import itemgetter
from typing import Any

import numpy as np

from processors._native import distinct_values, text_column
from processors.compute import FEATURE_NAMES

FEATURE_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}

# Record fields a rule can name (text, or missing). ``country`` is ``geo.country``.
TEXT_FIELDS: tuple[str, ...] = (
    "purchase_id",
    "wallet",
    "user_id",
    "organizer_id",
    "show_id",
    "ticket_id",
    "currency",
    "channel",
    "seller_wallet",
    "payment_method",
    "card_fingerprint",
    "card_country",
    "email_domain",
    "ip",
    "country",
    "device_id",
    "user_agent",
)
BLOCKLISTS: tuple[str, ...] = ("wallets", "ips")
_UNSET = object()


def country_of(record: Mapping[str, Any]) -> Any:
    """The ``country`` field: ``geo.country``, None without a geo point."""
    geo = record.get("geo")
    return geo.get("country") if geo else None


def field_path(name: str) -> tuple[str, str | None]:
    """Where a record holds the field ``name``: (key, key within it or None), as the native
    readers take it (``text_columns``)."""
    return ("geo", "country") if name == "country" else (name, None)


def record_values(records: Sequence[Mapping[str, Any]], name: str) -> list[Any]:
    """Field ``name`` of every record (None where it has none)."""
    if type(records) is list:  # natively, for plain dicts (~10 against ~40 ns a record)
        try:
            return text_column(records, *field_path(name))
        except ValueError:  # a record (or its geo) that is not a dict: as below
            pass
    return python_values(records, name)


def python_values(records: Sequence[Mapping[str, Any]], name: str) -> list[Any]:
    """``record_values`` in Python (any mapping)."""
    if name == "country":
        return list(map(country_of, records))
    try:
        return list(map(itemgetter(name), records))  # in C; decoded records have every field
    except KeyError:
        return [r.get(name) for r in records]


def distinct_of(values: list[Any]) -> tuple[list[Any], np.ndarray] | None:
    """``RuleBatch.distinct`` of a column's values, natively: what ``dict.fromkeys(values)``
    keeps, and each value's index among its keys (None when a value is unhashable)."""
    found = distinct_values(values)
    if found is None:
        return None
    kept, codes = found
    return kept, np.frombuffer(codes, dtype=np.intp)


def object_column(values: Iterable[Any], n: int | None = None) -> np.ndarray:
    """A 1-d object array of ``values`` (never a 2-d array, whatever the values are)."""
    if n is None:
        values = values if isinstance(values, Sequence) else list(values)
        n = len(values)
    return np.fromiter(values, dtype=object, count=n)


class RuleBatch:
    """Columns of a batch of purchases; see the module docstring. A subset reads its parent's
    columns through its row indices, on first use (nothing is copied that no rule reads)."""

    __slots__ = ("blocked", "n", "_records", "_columns", "_parent", "_rows", "_features",
                 "_fields", "_memo")  # fmt: skip

    def __init__(
        self,
        records: Sequence[Mapping[str, Any]],
        features: np.ndarray,
        blocked_wallets: Set[str] = frozenset(),
        blocked_ips: Set[str] = frozenset(),
    ) -> None:
        X = np.asarray(features, dtype=np.float64)
        if X.shape != (len(records), len(FEATURE_NAMES)):
            raise ValueError(
                f"features must be {len(records)} x {len(FEATURE_NAMES)} (records x "
                f"FEATURE_NAMES), got {X.shape}"
            )
        self._records: Sequence[Mapping[str, Any]] | None = records
        # one contiguous row per feature; a subset has none (it reads its parent's)
        self._columns: np.ndarray | None = np.ascontiguousarray(X.T)
        self._parent: RuleBatch | None = None
        self._rows = np.arange(len(records))
        self.blocked = {"wallets": blocked_wallets, "ips": blocked_ips}
        self.n = len(records)
        self._features: dict[str, np.ndarray] = {}
        self._fields: dict[str, np.ndarray] = {}
        self._memo: dict[str, Any] = {}

    @classmethod
    def from_dicts(
        cls,
        records: Sequence[Mapping[str, Any]],
        features: Sequence[Mapping[str, float]],
        blocked_wallets: Set[str] = frozenset(),
        blocked_ips: Set[str] = frozenset(),
    ) -> RuleBatch:
        """From one features dict per record (every name of ``FEATURE_NAMES`` required)."""
        X = np.empty((len(features), len(FEATURE_NAMES)), dtype=np.float64)
        for i, row in enumerate(features):
            try:
                X[i] = [row[name] for name in FEATURE_NAMES]
            except KeyError as exc:
                raise ValueError(f"record {i}: feature {exc.args[0]!r} is missing") from exc
        return cls(records, X, blocked_wallets, blocked_ips)

    @property
    def records(self) -> Sequence[Mapping[str, Any]]:
        if self._records is None:
            assert self._parent is not None
            self._records = [self._parent.records[i] for i in self._rows.tolist()]
        return self._records

    def columns(self) -> np.ndarray:
        """The features, one contiguous row a feature (``FEATURE_NAMES`` order), one column a
        record (``program``); a subset's are gathered from its parent's."""
        if self._columns is None:
            return np.stack([self.feature(name) for name in FEATURE_NAMES])
        return self._columns

    def feature(self, name: str) -> np.ndarray:
        column = self._features.get(name)
        if column is None:
            columns = self._columns
            if columns is not None:
                column = columns[FEATURE_INDEX[name]]
            else:
                assert self._parent is not None  # a batch without columns is a subset
                column = self._parent.feature(name)[self._rows]
            self._features[name] = column
        return column

    def values(self, name: str) -> list[Any]:
        """The text column ``name`` as a list (``field``'s values, without making the column
        when it has not been made)."""
        column = self._fields.get(name)
        if column is not None or self._parent is not None:
            return self.field(name).tolist()
        return record_values(self.records, name)

    def field(self, name: str) -> np.ndarray:
        """The text column ``name`` (None where the record has no value). A subset takes its
        parent's column at its rows if the parent has read it, else reads its own records
        (a reason's field on the few rows that fired: not the whole batch's)."""
        column = self._fields.get(name)
        if column is None:
            parent = self._parent
            whole = None if parent is None else parent._fields.get(name)
            if whole is None:
                column = object_column(record_values(self.records, name))
            else:
                column = whole[self._rows]
            self._fields[name] = column
        return column

    def distinct(self, name: str) -> tuple[list[Any], np.ndarray] | None:
        """The text column ``name`` as its distinct values (first seen first; values equal as
        dict keys count as one) and each row's index among them, once per batch; None when a
        value cannot be a dict key. A subset has its own (its rows' values only)."""
        return self.memo("distinct " + name, lambda: distinct_of(self.field(name).tolist()))

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per batch for ``key`` (a parameter-free subexpression)."""
        value = self._memo.get(key, _UNSET)
        if value is _UNSET:
            value = self._memo[key] = compute()
        return value

    def subset(self, rows: np.ndarray) -> RuleBatch:
        """This batch restricted to ``rows`` (indices), blocklists shared."""
        sub = RuleBatch.__new__(RuleBatch)
        sub._records, sub._columns = None, None
        sub._parent, sub._rows = self, rows
        sub.blocked, sub.n = self.blocked, len(rows)
        sub._features, sub._fields, sub._memo = {}, {}, {}
        return sub
