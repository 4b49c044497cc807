"""Terms and the pro-rata rule, with figures computed by hand."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from core.policies.terms import add_years, policy_year, prorata, remaining_days, term_end


def test_a_term_is_one_year_or_the_risks_term_years() -> None:
    assert term_end({"sum_insured": "1"}, date(2025, 3, 1)) == date(2026, 3, 1)
    assert term_end({"term_years": 10}, date(2025, 3, 1)) == date(2035, 3, 1)
    assert term_end({"term_years": "5"}, date(2025, 3, 1)) == date(2030, 3, 1)
    # Nonsense is not a term: one year.
    for odd in (0, -2, "ten", True, 500):
        assert term_end({"term_years": odd}, date(2025, 3, 1)) == date(2026, 3, 1)
    # 29 February has no anniversary in a common year: the 28th.
    assert add_years(date(2024, 2, 29), 1) == date(2025, 2, 28)
    assert add_years(date(2024, 2, 29), 4) == date(2028, 2, 29)


def test_policy_years_run_from_anniversary_to_anniversary() -> None:
    start, end = date(2025, 3, 1), date(2035, 3, 1)
    year = policy_year(start, end, date(2027, 2, 28))
    assert (year.start, year.end, year.days) == (date(2026, 3, 1), date(2027, 3, 1), 365)
    leap = policy_year(start, end, date(2027, 3, 1))
    assert (leap.start, leap.end, leap.days) == (date(2027, 3, 1), date(2028, 3, 1), 366)
    with pytest.raises(ValueError):
        policy_year(start, end, end)


def test_prorata_by_hand() -> None:
    start, end = date(2025, 3, 1), date(2026, 3, 1)  # 365 days
    # 2025-06-09 is day 101: 265 days remain (2025-06-09 .. 2026-02-28).
    assert remaining_days(start, end, date(2025, 6, 9)) == (265, 365)
    # 200 x 265 / 365 = 145.2054... -> 145.21
    assert prorata(Decimal("200.00"), start, end, date(2025, 6, 9)) == Decimal("145.21")
    # A decrease rounds the same way, away from zero: -145.21.
    assert prorata(Decimal("-200.00"), start, end, date(2025, 6, 9)) == Decimal("-145.21")
    # From the first day, the whole year; from the last, one day: 1,500 / 365 = 4.1095... -> 4.11
    assert prorata(Decimal("1500.00"), start, end, start) == Decimal("1500.00")
    assert prorata(Decimal("1500.00"), start, end, date(2026, 2, 28)) == Decimal("4.11")


def test_prorata_rounds_half_up_never_to_even() -> None:
    # 366-day policy year: 1.83 x 1 / 366 = 0.005 exactly. Half-up: 0.01 (banker's: 0.00).
    start, end = date(2027, 3, 1), date(2028, 3, 1)
    assert (end - start).days == 366
    assert prorata(Decimal("1.83"), start, end, date(2028, 2, 29)) == Decimal("0.01")
    assert prorata(Decimal("-1.83"), start, end, date(2028, 2, 29)) == Decimal("-0.01")
    # 183 days left of 366: 5.49 x 183 / 366 = 2.745 -> 2.75
    assert prorata(Decimal("5.49"), start, end, date(2027, 8, 31)) == Decimal("2.75")
