"""A term-life risk as a quote sends it, checked against the basis it will be rated on.

`read_risk` turns the raw values (JSON: strings, numbers, booleans; a form: strings)
into a `Risk`, or raises one `Refusal` naming every bad field: a missing field, a
float sum assured, an age or term outside the product's limits or the mortality
table, a sex or smoker status the table has no rates for. Empty strings count as
missing, as an empty form field sends them.

The age is `issue_age`, or the age nearest birthday at the start date from
`date_of_birth` (`age_nearest_birthday`). Given both, they must agree.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from core.hookspecs import Refusal
from core.money import parse_amount
from plugins.premium_life.basis import SEXES, Basis, Mortality, whole

FIELDS = ("issue_age", "date_of_birth", "term_years", "sum_assured", "sex", "smoker")
REQUIRED = "is required"
# Beyond any sum assured, and well inside the digits the rating carries.
MAX_DIGITS = 15
TRUE = frozenset({"true", "yes", "1", "on"})
FALSE = frozenset({"false", "no", "0", "off"})


@dataclass(frozen=True)
class Risk:
    age: int
    # Where the age came from, for the trace: the field, and the date of birth if any.
    age_field: str
    date_of_birth: date | None
    term_years: int
    sum_assured: Decimal
    sex: str
    smoker: bool
    mortality: Mortality


def _add_months(day: date, months: int) -> date:
    """`day` plus calendar months, the day clamped to the month's end (Aug 31 + 6 -> Feb 28)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _birthday(born: date, year: int) -> date:
    # A 29 February birthday falls on 28 February in other years.
    return date(year, born.month, min(born.day, calendar.monthrange(year, born.month)[1]))


def age_nearest_birthday(born: date, on: date) -> int:
    """Age at `on`, to the nearest birthday: the age last birthday, plus one from the
    day six calendar months after that birthday (exactly half a year rounds up).
    """
    last = _birthday(born, on.year)
    if last > on:
        last = _birthday(born, on.year - 1)
    age_last_birthday = last.year - born.year
    return age_last_birthday + (1 if on >= _add_months(last, 6) else 0)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _date(value: Any) -> date:
    if isinstance(value, datetime):
        raise ValueError("must be a date (YYYY-MM-DD), not a date and time")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError("must be a date (YYYY-MM-DD)")


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE | FALSE:
        return value.strip().lower() in TRUE
    raise ValueError("must be true or false")


def _sum_assured(value: Any) -> Decimal:
    amount = parse_amount(value)
    if amount <= 0:
        raise ValueError("must be more than 0")
    if amount.adjusted() >= MAX_DIGITS:
        raise ValueError(f"must be less than 10^{MAX_DIGITS}")
    if amount != amount.quantize(Decimal("0.01")):
        raise ValueError("must be in whole cents")
    return amount


def read_risk(raw: Mapping[str, Any], start_date: date, basis: Basis) -> Risk:
    """The checked risk, or a `Refusal` naming every bad field."""
    errors: dict[str, str] = {}
    for name in sorted(set(raw) - set(FIELDS)):
        errors[name] = "is not a term life risk field"

    def field(name: str, read: Any) -> Any:
        value = raw.get(name)
        if _missing(value):
            return None
        try:
            return read(value)
        except ValueError as exc:
            errors[name] = str(exc)
            return None

    issue_age = field("issue_age", whole)
    born = field("date_of_birth", _date)
    term = field("term_years", whole)
    sum_assured = field("sum_assured", _sum_assured)
    sex = field("sex", lambda v: _choice(v, SEXES))
    smoker = field("smoker", _boolean)
    for name, value in (("term_years", term), ("sum_assured", sum_assured), ("sex", sex)):
        if value is None and _missing(raw.get(name)):
            errors[name] = REQUIRED
    if smoker is None and _missing(raw.get("smoker")):
        errors["smoker"] = REQUIRED

    age, age_field = issue_age, "issue_age"
    if born is not None:
        age_field = "date_of_birth"
        if born >= start_date:
            errors["date_of_birth"] = "must be before the start date"
            age = None
        else:
            age = age_nearest_birthday(born, start_date)
            if issue_age is not None and issue_age != age:
                errors["issue_age"] = (
                    f"does not match the date of birth (age {age} nearest birthday "
                    f"on {start_date.isoformat()})"
                )
    elif issue_age is None and "issue_age" not in errors and "date_of_birth" not in errors:
        errors["issue_age"] = "give the age at issue or the date of birth"

    limits = basis.limits
    if age is not None and not limits.min_age <= age <= limits.max_age:
        errors.setdefault(
            age_field, f"age {age} is outside the table ({limits.min_age} to {limits.max_age})"
        )
        age = None
    if term is not None and not limits.min_term <= term <= limits.max_term:
        errors["term_years"] = (
            f"{term} years is outside the table ({limits.min_term} to {limits.max_term} years)"
        )
        term = None
    if age is not None and term is not None and age + term > limits.max_age_at_expiry:
        errors["term_years"] = (
            f"age {age} + {term} years = {age + term} is past the maximum age at expiry "
            f"{limits.max_age_at_expiry}"
        )
    if sum_assured is not None:
        if limits.min_sum_assured is not None and sum_assured < limits.min_sum_assured:
            errors["sum_assured"] = f"must be at least {limits.min_sum_assured}"
        if limits.max_sum_assured is not None and sum_assured > limits.max_sum_assured:
            errors["sum_assured"] = f"must be at most {limits.max_sum_assured}"

    mortality = None
    if sex is not None and smoker is not None:
        mortality = basis.mortality_for(sex, smoker)
        if mortality is None:
            who = f"{sex} {'smokers' if smoker else 'non-smokers'}"
            errors["sex"] = errors["smoker"] = f"the rate table has no mortality for {who}"
        elif age is not None and term is not None and "term_years" not in errors:
            if age < mortality.first_age:
                errors.setdefault(
                    age_field, f"age {age} is below the table's first age {mortality.first_age}"
                )
            elif age + term - 1 > mortality.last_age:
                errors["term_years"] = (
                    f"age {age} + {term} years runs past the table's last age {mortality.last_age}"
                )

    if errors:
        raise Refusal("the term life risk is not valid", errors=errors)
    assert age is not None and term is not None and sum_assured is not None
    assert sex is not None and smoker is not None and mortality is not None
    return Risk(age, age_field, born, term, sum_assured, sex, smoker, mortality)


def _choice(value: Any, choices: tuple[str, ...]) -> str:
    text = value.strip().lower() if isinstance(value, str) else ""
    if text not in choices:
        raise ValueError(f"must be one of {', '.join(choices)}")
    return text
