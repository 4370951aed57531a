"""Money in one currency: amounts converted to the reference currency's minor units.

Features and rules compare amounts across purchases paid in different currencies, so every
amount they see goes through ``to_ref_minor``: the purchase's minor units are scaled by its
currency's ISO 4217 exponent (JPY 0, USD 2, BHD 3; from the ``iso4217`` package), multiplied
by the rate in the versioned table ``processors/rates.toml`` (Decimal, exact) and rounded
half-even to the reference currency's minor units. The table is committed with its source and
date; ``sentinel rates update FILE.csv`` replaces it from a CSV an operator provides. Nothing is
fetched at run time.
"""

from __future__ import annotations

import csv
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path

import iso4217

RATES_PATH = Path(__file__).with_name("rates.toml")
_ONE = Decimal(1)
MEMO_CAP = 1 << 16  # conversions remembered per table (prices repeat: a show has few)
# Orders' (unit price, quantity, currency) remembered per table (``order_ref_minor``): a
# simulated week of 12 562 purchases holds 2 454; ~250 bytes each, ~1 MB at most.
ORDERS_MEMO_CAP = 4096


class RatesError(ValueError):
    """A rates table or CSV that cannot be used; the message names the file, row and field."""


class UnknownCurrencyError(ValueError):
    """A purchase in a currency the rates table has no rate for (the edge refuses these; a
    record that reaches the processors anyway is dead-lettered with this reason)."""


def exponent(currency: str) -> int:
    """ISO 4217 minor-unit digits (JPY 0, USD 2, BHD 3); KeyError for an unknown code."""
    try:
        return int(iso4217.Currency(currency.upper()).exponent or 0)
    except ValueError as exc:
        raise KeyError(currency) from exc


@dataclass(frozen=True)
class RatesTable:
    """Value of one unit of each currency in the reference currency, with provenance."""

    version: str
    reference: str
    source: str
    as_of: str
    rates: Mapping[str, Decimal]

    def __post_init__(self) -> None:
        # (minor -> reference minor) factor per currency, exact, computed once.
        factors = {
            code: rate.scaleb(exponent(self.reference) - exponent(code))
            for code, rate in self.rates.items()
        }
        object.__setattr__(self, "_factors", factors)
        object.__setattr__(self, "_memo", {})
        object.__setattr__(self, "_orders", {})  # ``order_ref_minor``'s memo

    def to_ref_minor(self, amount_minor: int, currency: str | None) -> int | None:
        """``amount_minor`` of ``currency`` in reference minor units; None for a currency the
        table does not know. A missing currency is taken to be the reference. Results are
        remembered (a bounded memo): the Decimal work is done once per (amount, currency)."""
        amount = int(amount_minor)
        key = (amount, currency)
        memo = self._memo  # type: ignore[attr-defined]
        converted = memo.get(key)
        if converted is None:
            converted = self._convert(amount, currency)
            if converted is not None:
                if len(memo) >= MEMO_CAP:
                    memo.clear()
                memo[key] = converted
        return converted

    def _convert(self, amount_minor: int, currency: str | None) -> int | None:
        code = (currency or self.reference).upper()
        factor = self._factors.get(code)  # type: ignore[attr-defined]
        if factor is None:
            return None
        if factor == _ONE:
            return int(amount_minor)
        return int((Decimal(int(amount_minor)) * factor).quantize(_ONE, ROUND_HALF_EVEN))

    def from_ref_minor(self, ref_minor: int, currency: str) -> int:
        """The inverse (rounded half-even to ``currency``'s minor units): test traffic."""
        factor = self._factors[currency.upper()]  # type: ignore[attr-defined]
        return int((Decimal(int(ref_minor)) / factor).quantize(_ONE, ROUND_HALF_EVEN))


def load_rates(path: str | Path = RATES_PATH) -> RatesTable:
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RatesError(f"{path}: {exc}") from exc
    for key in ("version", "reference", "source", "as_of", "rates"):
        if key not in doc:
            raise RatesError(f"{path}: missing {key!r}")
    rates = {code: _rate(value, f"{path}: rates.{code}") for code, value in doc["rates"].items()}
    return _table(doc["version"], doc["reference"], doc["source"], doc["as_of"], rates, path)


def _table(version, reference, source, as_of, rates: dict[str, Decimal], where) -> RatesTable:
    reference = reference.upper()
    rates = {code.upper(): rate for code, rate in rates.items()}
    rates[reference] = _ONE
    for code in rates:
        try:
            exponent(code)
        except KeyError:
            raise RatesError(f"{where}: {code!r} is not an ISO 4217 currency") from None
    return RatesTable(version, reference, source, as_of, rates)


def _rate(value: object, where: str) -> Decimal:
    try:
        rate = Decimal(str(value))
    except InvalidOperation:
        raise RatesError(f"{where}: {value!r} is not a number") from None
    if not rate.is_finite() or rate <= 0:
        raise RatesError(f"{where}: a rate must be a positive number, got {value!r}")
    return rate


@lru_cache(maxsize=1)
def default_rates() -> RatesTable:
    return load_rates(RATES_PATH)


def ref_minor(amount_minor: int, currency: str | None) -> int:
    """``amount_minor`` in reference minor units with the committed table."""
    table = default_rates()
    converted = table.to_ref_minor(amount_minor, currency)
    if converted is None:
        raise UnknownCurrencyError(
            f"currency {currency!r}: no exchange rate in rates table {table.version}"
        )
    return converted


def order_ref_minor(unit_price_minor: int, quantity: int, currency: str | None) -> tuple[int, int]:
    """An order's (amount, unit price) in reference minor units with the committed table:
    ``ref_minor`` of unit price x quantity, then of the unit price (raising what it raises).
    Remembered per (unit price, quantity, currency): a show's orders repeat few of them, and
    one look-up replaces two conversions (``processors.records.read_order``)."""
    table = default_rates()
    memo = table._orders  # type: ignore[attr-defined]
    key = (unit_price_minor, quantity, currency)
    pair = memo.get(key)
    if pair is None:
        pair = (
            ref_minor(unit_price_minor * quantity, currency),
            ref_minor(unit_price_minor, currency),
        )
        if len(memo) >= ORDERS_MEMO_CAP:
            memo.clear()
        memo[key] = pair
    return pair


def amount_ref(purchase: Mapping) -> int:
    """The order's amount (unit price x quantity) in reference minor units."""
    total = int(purchase["unit_price_minor"]) * int(purchase["quantity"])
    return ref_minor(total, purchase.get("currency"))


def unit_price_ref(purchase: Mapping) -> int:
    """One ticket's price in reference minor units."""
    return ref_minor(int(purchase["unit_price_minor"]), purchase.get("currency"))


def read_rates_csv(path: str | Path, reference: str) -> dict[str, Decimal]:
    """``currency,rate`` rows (rate = value of one unit in ``reference``; header required)."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or {"currency", "rate"} - set(reader.fieldnames):
            raise RatesError(f"{path}: header must name the columns 'currency' and 'rate'")
        rates = {}
        for n, row in enumerate(reader, start=2):
            code = (row["currency"] or "").strip().upper()
            rates[code] = _rate((row["rate"] or "").strip(), f"{path}: line {n}: rate")
    _table("check", reference, "", "", dict(rates), path)  # every code is ISO 4217
    if not rates:
        raise RatesError(f"{path}: no rates")
    return rates


def write_rates(path: str | Path, table: RatesTable) -> None:
    lines = [
        "# Exchange rates to the reference currency: value of ONE unit of each currency in the",
        "# reference currency (decimal strings, exact). Features and rules convert every amount",
        "# with this table (processors/money.py). Replace it with `sentinel rates update FILE`;",
        "# it is never fetched at run time.",
        "",
        f'version = "{table.version}"',
        f'reference = "{table.reference}"',
        f'source = "{table.source}"',
        f'as_of = "{table.as_of}"',
        "",
        "[rates]",
    ]
    lines += [f'{code} = "{rate}"' for code, rate in sorted(table.rates.items())]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
