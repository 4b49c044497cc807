"""The travel tariff and its rating, as pure functions (no Power Buyer state).

premium = max(minimum, round_cents(trip_days x daily rate of the region x age factor))

Every amount is a Decimal and the one rounding is half-up to the cent
(core.money.round_cents), so a stored trace replays to the cent.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from core.hookspecs import Premium, RateTable, RatingStep, Refusal
from core.money import round_cents

CODE = "travel_single_trip"
REGIONS = ("europe", "worldwide")
MAX_TRIP_DAYS = 180

DEFAULT_TABLE = RateTable(
    product_line=CODE,
    version="travel-default-1",
    currency="EUR",
    data={
        "daily_rate": {"europe": Decimal("1.20"), "worldwide": Decimal("2.50")},
        # The first band whose max_age is at least the traveller's age applies.
        "age_factor": [
            {"max_age": 17, "factor": Decimal("0.5")},
            {"max_age": 64, "factor": Decimal("1.0")},
            {"max_age": 85, "factor": Decimal("2.0")},
        ],
        "minimum_premium": Decimal("15.00"),
    },
)


def _whole(value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be a whole number")
    try:
        number = int(value)
    except ValueError:
        raise ValueError("must be a whole number") from None
    if not low <= number <= high:
        raise ValueError(f"must be between {low} and {high}")
    return number


def clean(risk: Mapping[str, Any], table: RateTable) -> dict[str, Any]:
    """The risk's values, checked; one Refusal naming every bad field."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    regions = tuple(table.data["daily_rate"])
    oldest = table.data["age_factor"][-1]["max_age"]
    checks = {
        "destination": lambda v: v if v in regions else _fail(f"must be one of {regions}"),
        "trip_days": lambda v: _whole(v, 1, MAX_TRIP_DAYS),
        "traveller_age": lambda v: _whole(v, 0, oldest),
    }
    for name, check in checks.items():
        if risk.get(name) in (None, ""):
            errors[name] = "is required"
            continue
        try:
            values[name] = check(risk[name])
        except ValueError as exc:
            errors[name] = str(exc)
    for name in sorted(set(risk) - set(checks)):
        errors[name] = "is not a field of this product"
    if errors:
        raise Refusal("the trip cannot be rated", errors=errors)
    return values


def _fail(message: str) -> Any:
    raise ValueError(message)


def rate(risk: Mapping[str, Any], table: RateTable) -> Premium:
    values = clean(risk, table)
    data, version = table.data, table.version
    daily = Decimal(data["daily_rate"][values["destination"]])
    band = next(b for b in data["age_factor"] if values["traveller_age"] <= b["max_age"])
    factor = Decimal(band["factor"])
    raw = round_cents(values["trip_days"] * daily * factor)
    minimum = Decimal(data["minimum_premium"])
    premium = max(raw, minimum)
    steps = (
        RatingStep(
            "daily_rate",
            {"destination": values["destination"], "trip_days": values["trip_days"]},
            daily,
            version,
            label="Daily rate",
            factor=values["destination"],
        ),
        RatingStep(
            "age_factor",
            {"traveller_age": values["traveller_age"], "factor": factor},
            raw,
            version,
            label="Age factor",
            factor=f"x{factor}",
            sign=0,
        ),
        RatingStep(
            "premium",
            {"rated": raw, "minimum_premium": minimum},
            premium,
            version,
            label="Premium",
            sign=1,
        ),
    )
    return Premium(premium, table.currency or "EUR", steps)
