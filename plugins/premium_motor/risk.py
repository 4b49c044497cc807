"""A motor risk as the caller sent it (JSON values), checked field by field.

Every field is read before anything is refused, so one `Refusal` names each bad field.
What is accepted:

- amounts (`vehicle_value`, `agreed_value`, `voluntary_deductible`): a decimal string
  ("800000", "800,000.00") or a JSON integer; never a JSON number with a fraction or
  exponent (`800000.0`), which arrives as a float and could already be off by a cent;
- whole numbers (`vehicle_age_months`, `engine_cc`, `claim_free_years`): a JSON
  integer or a string of digits; `36.0` and `"36.5"` are refused;
- `zone`: one of the tariff's zones, exactly as written there ("A", "B");
- `voluntary_deductible`: 0 or one of the tariff's deductibles;
- `agreed_value`: required beyond the tariff's `agreed_value_after_months`, ignored
  before; an empty string or null counts as not given, for every field;
- a field the line does not have is refused, so a misspelt one is not silently unused.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, NamedTuple

from core.hookspecs import Refusal
from core.money import CENT, parse_amount

from .tariff import WHOLE, checked_amount

FIELDS = (
    "vehicle_value",
    "vehicle_age_months",
    "engine_cc",
    "zone",
    "claim_free_years",
    "voluntary_deductible",
    "agreed_value",
)
KNOWN = frozenset(FIELDS)


# A NamedTuple, not a frozen dataclass: as immutable, and cheaper to make (a book of a
# hundred thousand risks is read in one re-rating).
class MotorRisk(NamedTuple):
    vehicle_value: Decimal
    vehicle_age_months: int
    engine_cc: int
    zone: str
    claim_free_years: int
    voluntary_deductible: Decimal
    agreed_value: Decimal | None


class RiskRules(NamedTuple):
    """What a risk is checked against on one tariff, worked out once per table rather
    than once per risk (`risk_rules`)."""

    zones: tuple[str, ...]
    deductibles: tuple[Decimal, ...]  # 0 (none) and the tariff's
    agreed_value_after_months: int


def risk_rules(tariff: Mapping[str, Any]) -> RiskRules:
    """The rules of a checked tariff (tariff.check_tariff)."""
    discounts = tariff["voluntary_deductible_discount"]
    return RiskRules(
        zones=tuple(tariff["own_damage_rate_percent"]),
        deductibles=(Decimal(0), *(discount["deductible"] for discount in discounts)),
        agreed_value_after_months=tariff["agreed_value_after_months"],
    )


def read_risk(risk: Mapping[str, Any], rules: RiskRules) -> MotorRisk:
    """The checked risk, or `Refusal` whose `errors` name every bad field."""
    if not isinstance(risk, Mapping):
        raise Refusal("The risk must be an object", errors={"risk": "must be an object"})
    errors: dict[str, str] = {}

    def given(name: str) -> Any:
        value = risk.get(name)
        return None if value is None or (isinstance(value, str) and not value.strip()) else value

    def required(name: str) -> Any:
        value = given(name)
        if value is None:
            errors[name] = "is required"
        return value

    def amount(name: str, value: Any) -> Decimal | None:
        if value is None:
            return None
        try:
            number = parse_amount(value)
        except ValueError as exc:
            errors[name] = str(exc)
            return None
        if number <= 0:
            errors[name] = "must be more than zero"
            return None
        return checked_amount(number, name, errors.__setitem__)

    def whole(name: str, value: Any, minimum: int) -> int | None:
        if value is None:
            return None
        number = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and WHOLE.fullmatch(value.strip()):
            number = int(value)
        if number is None:
            errors[name] = "must be a whole number"
        elif number < minimum:
            errors[name] = "cannot be negative" if minimum == 0 else f"must be at least {minimum}"
            number = None
        return number

    for name in risk:
        if name not in KNOWN:
            errors[str(name)] = "is not a field of motor private car"

    vehicle_value = amount("vehicle_value", required("vehicle_value"))
    age = whole("vehicle_age_months", required("vehicle_age_months"), 0)
    engine_cc = whole("engine_cc", required("engine_cc"), 1)
    claim_free_years = whole("claim_free_years", required("claim_free_years"), 0)

    zones = rules.zones
    zone = required("zone")
    if zone is not None and zone not in zones:
        errors["zone"] = f"must be one of {', '.join(zones)}"
        zone = None

    deductibles = rules.deductibles
    deductible = required("voluntary_deductible")
    if deductible is not None:
        try:
            deductible = parse_amount(deductible)
        except ValueError as exc:
            errors["voluntary_deductible"] = str(exc)
            deductible = None
        if deductible is not None and deductible not in deductibles:
            errors["voluntary_deductible"] = f"must be one of {', '.join(map(plain, deductibles))}"
            deductible = None

    agreed_value = amount("agreed_value", given("agreed_value"))
    after = rules.agreed_value_after_months
    if age is not None and age > after and given("agreed_value") is None:
        errors["agreed_value"] = f"is required for a vehicle older than {after} months"

    if errors:
        count = len(errors)
        raise Refusal(
            f"The risk has {count} field{'s' if count > 1 else ''} to correct: "
            + ", ".join(errors),
            errors=errors,
        )
    # Every value is set once no error was recorded.
    assert vehicle_value is not None and age is not None and engine_cc is not None
    assert claim_free_years is not None and zone is not None and deductible is not None
    return MotorRisk(
        vehicle_value=vehicle_value,
        vehicle_age_months=age,
        engine_cc=engine_cc,
        zone=zone,
        claim_free_years=claim_free_years,
        voluntary_deductible=deductible,
        agreed_value=agreed_value if age > after else None,
    )


def plain(amount: Decimal, grouping: bool = False) -> str:
    """5000 (or 5,000) for Decimal("5000") and Decimal("5E+3") alike; cents only when
    there are some (1500.50)."""
    value = amount.normalize() if amount == amount.to_integral() else amount.quantize(CENT)
    return format(value, ",f" if grouping else "f")
