"""Rules of the products module: the errors it raises and what valid settings are.

Errors map each field to its messages, the shape of core.customers.rules.CustomerInvalid,
so the API turns them into a 422 naming every field and screens into form errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from core.hookspecs import PaymentFrequency

Errors = dict[str, list[str]]

FREQUENCIES: tuple[PaymentFrequency, ...] = ("annual", "half_yearly", "quarterly", "monthly")
GRACE_DAYS_MAX = 365
REVIVAL_YEARS_MAX = 50
NOTES_MAX = 2000


class ProductInvalid(ValueError):
    """Input that breaks a rule; `errors` maps each field to its messages."""

    def __init__(self, errors: Errors) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in sorted(errors.items())))
        self.errors = errors


class RatingRefused(ProductInvalid):
    """A risk that cannot be rated: an unknown or disabled product, no version in force
    on the start date, or the plugin's refusal of risk fields, named `risk.<field>`."""


def risk_field(name: str) -> str:
    """The name a plugin's refused risk field goes by in errors: `zone` -> `risk.zone`
    (the API's body nests the risk under `risk`). A refusal of the whole risk stays
    `risk`."""
    return name if name == "risk" or name.startswith("risk.") else f"risk.{name}"


def clean_grace_days(value: Any) -> dict[str, int]:
    """Days of grace for each payment frequency, 0 to 365."""
    if not isinstance(value, Mapping):
        raise ValueError(f"Give days for each of: {', '.join(FREQUENCIES)}.")
    unknown = sorted(set(map(str, value)) - set(FREQUENCIES))
    if unknown:
        raise ValueError(f"Unknown payment frequencies: {', '.join(unknown)}.")
    days: dict[str, int] = {}
    for frequency in FREQUENCIES:
        raw = value.get(frequency)
        if isinstance(raw, str) and raw.strip().isdigit():
            raw = int(raw.strip())
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ValueError(f"{frequency}: must be a whole number of days.")
        if not 0 <= raw <= GRACE_DAYS_MAX:
            raise ValueError(f"{frequency}: must be 0 to {GRACE_DAYS_MAX} days.")
        days[frequency] = raw
    return days


def clean_revival_years(value: Any) -> int | None:
    """Years after a lapse within which a policy may be revived; None: never."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("Must be a whole number of years, or empty for no revival.")
    if not 0 <= value <= REVIVAL_YEARS_MAX:
        raise ValueError(f"Must be 0 to {REVIVAL_YEARS_MAX} years.")
    return value


def clean_date(value: Any) -> date:
    if isinstance(value, date):
        return value
    if isinstance(value, str) and len(value.strip()) == 10:
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError("Must be a date, YYYY-MM-DD.")
