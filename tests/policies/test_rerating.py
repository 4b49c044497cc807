"""The bands of the bulk re-rating report, at and around each bound."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.policies.rerating import BANDS, band


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        ("899.99", "below -10%"),
        ("900.00", "-10% to -5%"),  # exactly -10%: not below it
        ("949.99", "-10% to -5%"),
        ("950.00", "-5% to 0%"),
        ("999.99", "-5% to 0%"),
        ("1000.00", "unchanged"),
        ("1000.01", "0% to 5%"),
        ("1049.99", "0% to 5%"),
        ("1050.00", "5% to 10%"),
        ("1099.99", "5% to 10%"),
        ("1100.00", "10% and more"),
        ("5000.00", "10% and more"),
    ],
)
def test_a_change_falls_in_the_band_of_its_percent(new: str, expected: str) -> None:
    assert band(Decimal("1000.00"), Decimal(new)) == expected
    assert expected in BANDS


def test_a_premium_from_nothing_is_a_rise_of_more_than_ten_percent() -> None:
    assert band(Decimal("0.00"), Decimal("10.00")) == "10% and more"
    assert band(Decimal("0.00"), Decimal("0.00")) == "unchanged"
