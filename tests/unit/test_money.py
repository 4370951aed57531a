from __future__ import annotations

from decimal import Decimal

import pytest

from processors.money import (
    ORDERS_MEMO_CAP,
    RatesError,
    RatesTable,
    UnknownCurrencyError,
    amount_ref,
    default_rates,
    exponent,
    load_rates,
    order_ref_minor,
    read_rates_csv,
    ref_minor,
    write_rates,
)

pytestmark = pytest.mark.unit


def test_iso_exponents_come_from_the_standard():
    assert (exponent("JPY"), exponent("USD"), exponent("BHD"), exponent("mxn")) == (0, 2, 3, 2)
    with pytest.raises(KeyError):
        exponent("XYZ")


def _table(**rates: str) -> RatesTable:
    return RatesTable("t", "USD", "test", "2025-01-01",
                      {"USD": Decimal(1), **{k: Decimal(v) for k, v in rates.items()}})


def test_zero_and_three_decimal_currencies_convert_by_their_exponent():
    t = _table(JPY="0.0066", BHD="2.66", MXN="0.05")
    assert t.to_ref_minor(10_000, "JPY") == 6_600  # 10 000 yen = 66.00 USD
    assert t.to_ref_minor(1_000, "BHD") == 266  # 1.000 BHD = 2.66 USD
    assert t.to_ref_minor(130_000, "MXN") == 6_500  # 1 300.00 MXN = 65.00 USD
    assert t.to_ref_minor(6_500, None) == 6_500  # no currency: the reference
    assert t.to_ref_minor(1, "XAF") is None


def test_rounding_is_half_even_on_the_reference_minor_unit():
    t = _table(EUR="1.005")
    assert t.to_ref_minor(100, "EUR") == 100  # 100.5 cents -> 100 (even)
    assert t.to_ref_minor(300, "EUR") == 302  # 301.5 -> 302 (even)


def test_purchase_amount_in_reference_and_unknown_currency_is_named():
    mxn = {"unit_price_minor": 100_000, "quantity": 2, "currency": "MXN"}
    assert amount_ref(mxn) == default_rates().to_ref_minor(200_000, "MXN")
    with pytest.raises(UnknownCurrencyError, match="XAF"):
        amount_ref({**mxn, "currency": "XAF"})


def test_an_orders_amount_and_unit_price_are_converted_as_two_conversions():
    """``order_ref_minor`` (remembered) gives what ``ref_minor`` gives for unit price x
    quantity and for the unit price, rounded separately; an unknown currency raises each time."""
    for unit, quantity, currency in [
        (100_001, 3, "MXN"),
        (999, 7, "JPY"),
        (1_005, 2, "EUR"),
        (1_234, 1, "BHD"),
        (6_500, 2, None),
        (6_500, 2, "USD"),
    ]:
        expected = (ref_minor(unit * quantity, currency), ref_minor(unit, currency))
        assert order_ref_minor(unit, quantity, currency) == expected
        assert order_ref_minor(unit, quantity, currency) == expected  # remembered
    for _ in range(2):
        with pytest.raises(UnknownCurrencyError, match="XAF"):
            order_ref_minor(100, 1, "XAF")


def test_remembered_orders_stay_bounded():
    memo = default_rates()._orders
    for unit in range(1, ORDERS_MEMO_CAP + 10):
        expected = (ref_minor(2 * unit, "GBP"), ref_minor(unit, "GBP"))
        assert order_ref_minor(unit, 2, "GBP") == expected
        assert len(memo) <= ORDERS_MEMO_CAP


def test_committed_table_states_source_and_date():
    t = default_rates()
    assert t.reference == "USD" and t.source and t.as_of and t.version
    assert {"EUR", "GBP", "MXN", "BRL", "JPY"} <= set(t.rates)


def test_csv_import_writes_a_table_that_loads_back(tmp_path):
    csv = tmp_path / "rates.csv"
    csv.write_text("currency,rate\nEUR,1.1\njpy,0.007\n")
    rates = read_rates_csv(csv, "USD")
    path = tmp_path / "rates.toml"
    write_rates(path, RatesTable("2025-06-01.1", "USD", "ops desk", "2025-06-01", rates))
    back = load_rates(path)
    assert back.rates == {"EUR": Decimal("1.1"), "JPY": Decimal("0.007"), "USD": Decimal(1)}
    assert (back.source, back.as_of) == ("ops desk", "2025-06-01")
    assert back.to_ref_minor(1000, "JPY") == 700


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("code,rate\nEUR,1\n", "header"),
        ("currency,rate\nEUR,abc\n", "line 2"),
        ("currency,rate\nEUR,1\nGBP,-1\n", "line 3"),
        ("currency,rate\nEUR,1\nZZZ,1\n", "ZZZ"),
    ],
)
def test_bad_csv_names_the_problem(tmp_path, text, message):
    csv = tmp_path / "rates.csv"
    csv.write_text(text)
    with pytest.raises(RatesError, match=message):
        read_rates_csv(csv, "USD")
