"""The dates of a policy's term and the money that moves when its terms change.

A term is the half-open range `[start_date, end_date)`: cover ends as `end_date`
begins, and a renewal starts on that very day, so consecutive terms neither overlap
nor leave a gap. Motor and other annual lines run one year; a line whose risk names
`term_years` (term life) runs that many years at a level annual premium.

Premiums are annual. Money for part of a year is counted in the *policy year* the
change falls in, the year from one anniversary of the start date to the next (or to
the end of the term): billing charges each later policy year at the annual premium
in force when it starts, so nothing beyond the current policy year is charged or
returned now. For an annual policy the policy year is the whole term.

Pro-rata rule (endorsements and cancellations alike):

    amount = round_cents(annual_difference x remaining_days / year_days)

where `remaining_days` counts the days from the effective date (included) to the end
of its policy year (excluded) and `year_days` the days of that policy year (365 or
366), rounded half-up to the cent once, at the end. Example: an annual premium going
from 1,000.00 to 1,200.00 on day 101 of a 365-day year leaves 265 days:
200 x 265 / 365 = 145.2054... -> 145.21.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from core.money import round_cents

# A term longer than this is a typo, not a policy (term life tables stop well before).
MAX_TERM_YEARS = 60


def add_years(day: date, years: int) -> date:
    """The same day `years` later; 29 February becomes 28 February in common years."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def term_years(risk: Mapping[str, Any]) -> int:
    """How many years a term of this risk runs: `term_years` when the line rates on it
    (term life), else one."""
    value = risk.get("term_years")
    # Most lines (motor) have no `term_years`: answered before any parsing, since a
    # bulk re-rating asks for every policy of a book.
    if value is None or isinstance(value, bool):
        return 1
    try:
        years = int(str(value))
    except (TypeError, ValueError):
        return 1
    return years if 1 <= years <= MAX_TERM_YEARS else 1


def term_end(risk: Mapping[str, Any], start: date) -> date:
    """The first day after the term that starts on `start`."""
    return add_years(start, term_years(risk))


@dataclass(frozen=True)
class PolicyYear:
    """One policy year: `[start, end)`."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days


def policy_year(start: date, end: date, on: date) -> PolicyYear:
    """The policy year of the term `[start, end)` that contains `on`."""
    if not start <= on < end:
        raise ValueError(f"{on} is not within the term {start} to {end}")
    years = on.year - start.year
    if add_years(start, years) > on:
        years -= 1
    return PolicyYear(add_years(start, years), min(add_years(start, years + 1), end))


def remaining_days(start: date, end: date, on: date) -> tuple[int, int]:
    """(days left in the policy year from `on`, included; days of that policy year)."""
    year = policy_year(start, end, on)
    return (year.end - on).days, year.days


def prorata(annual: Decimal, start: date, end: date, on: date) -> Decimal:
    """`annual` for the rest of the policy year from `on`, rounded half-up to the cent
    (the module's rule). Negative amounts round away from zero like positive ones."""
    left, days = remaining_days(start, end, on)
    return round_cents(annual * left / days)
