"""The motor tariff: its shape, the default of PRODUCT.md, and the check every table
passes before it rates anything.

A tariff is plain data, `RateTable.data`, shaped like `DEFAULT_TARIFF.data`:

- `depreciation`: `[{"max_age_months": int, "rate": ratio}, ...]`, ages increasing; a
  vehicle is depreciated by the first entry whose age it does not exceed.
- `agreed_value_after_months`: beyond this age the IDV is the agreed value.
- `engine_bands_cc`: upper bounds in cc, increasing, the last one `null` (no bound).
- `own_damage_rate_percent`: zone -> `[{"max_age_months": int | null, "rates": [% of
  IDV per engine band]}, ...]`, ages increasing, the last one `null`.
- `voluntary_deductible_discount`: `[{"deductible": amount, "rate": ratio, "cap":
  amount}, ...]`; no voluntary deductible (0) means no discount.
- `no_claim_bonus`: `[{"claim_free_years": int, "rate": ratio}, ...]`, years
  increasing; the last entry covers that many years or more, fewer than the first none.
- `third_party_by_engine_band`: one amount per engine band.
- `rounding` (optional): only ever "half-up to the cent at every step".

Numbers may be ints, Decimals or decimal strings (a table stored as JSON keeps its
decimals as strings); floats are refused, as everywhere money is concerned.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from decimal import Decimal as D
from typing import Any

from core.hookspecs import RateTable, Refusal

CODE = "motor_private_car"
ROUNDING = "half-up to the cent at every step"
# Amounts stay far below what 28-digit Decimal arithmetic can carry to the cent.
MAX_AMOUNT = Decimal(10) ** 12
WHOLE = re.compile(r"-?[0-9]+")
KEYS = (
    "rounding",
    "depreciation",
    "agreed_value_after_months",
    "engine_bands_cc",
    "own_damage_rate_percent",
    "voluntary_deductible_discount",
    "no_claim_bonus",
    "third_party_by_engine_band",
)


def _od_rates(up_to_60: str, up_to_120: str, older: str) -> list[dict]:
    """Own-damage rates in % of IDV by engine band (<=1000cc, 1001-1500cc, >1500cc)."""
    return [
        {"max_age_months": 60, "rates": [D(r) for r in up_to_60.split()]},
        {"max_age_months": 120, "rates": [D(r) for r in up_to_120.split()]},
        {"max_age_months": None, "rates": [D(r) for r in older.split()]},
    ]


DEFAULT_TARIFF = RateTable(
    product_line=CODE,
    version="default-1",
    currency="INR",
    data={
        "rounding": ROUNDING,
        "depreciation": [
            {"max_age_months": 6, "rate": D("0.05")},
            {"max_age_months": 12, "rate": D("0.15")},
            {"max_age_months": 24, "rate": D("0.20")},
            {"max_age_months": 36, "rate": D("0.30")},
            {"max_age_months": 48, "rate": D("0.40")},
            {"max_age_months": 60, "rate": D("0.50")},
        ],
        "agreed_value_after_months": 60,
        "engine_bands_cc": [1000, 1500, None],
        "own_damage_rate_percent": {
            "A": _od_rates("3.127 3.283 3.440", "3.283 3.447 3.612", "3.362 3.529 3.698"),
            "B": _od_rates("3.039 3.191 3.343", "3.191 3.351 3.510", "3.267 3.430 3.594"),
        },
        "voluntary_deductible_discount": [
            {"deductible": D("2500"), "rate": D("0.20"), "cap": D("750")},
            {"deductible": D("5000"), "rate": D("0.25"), "cap": D("1500")},
            {"deductible": D("7500"), "rate": D("0.30"), "cap": D("2000")},
            {"deductible": D("15000"), "rate": D("0.35"), "cap": D("2500")},
        ],
        # Claim-free years -> bonus; 5 covers "5 or more".
        "no_claim_bonus": [
            {"claim_free_years": 1, "rate": D("0.20")},
            {"claim_free_years": 2, "rate": D("0.25")},
            {"claim_free_years": 3, "rate": D("0.35")},
            {"claim_free_years": 4, "rate": D("0.45")},
            {"claim_free_years": 5, "rate": D("0.50")},
        ],
        "third_party_by_engine_band": [D("2094"), D("3416"), D("7897")],
    },
)


def checked_amount(amount: Decimal, path: str, fail: Callable[[str, str], None]) -> Decimal | None:
    """`amount` if it is a sum of money we rate: whole cents, below `MAX_AMOUNT`."""
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        fail(path, "must have at most two decimal places")
        return None
    if amount >= MAX_AMOUNT:
        fail(path, f"must be less than {MAX_AMOUNT:,}")
        return None
    return amount


class _Check:
    """Collects every problem of a table by its path, so one answer names them all."""

    def __init__(self) -> None:
        self.errors: dict[str, str] = {}

    def fail(self, path: str, reason: str) -> None:
        self.errors.setdefault(path, reason)

    def entries(self, value: Any, path: str, *, allow_empty: bool = False) -> list[Any]:
        if not isinstance(value, list):
            self.fail(path, "must be a list")
            return []
        if not value and not allow_empty:
            self.fail(path, "must have at least one entry")
        return value

    def record(self, value: Any, path: str, keys: tuple[str, ...]) -> Mapping[str, Any] | None:
        """`value` as an object with exactly `keys`; None (and the reason) otherwise."""
        if not isinstance(value, Mapping):
            self.fail(path, f"must be an object with {', '.join(keys)}")
            return None
        for key in value:
            if key not in keys:
                self.fail(f"{path}.{key}", "is not expected here")
        for key in keys:
            if key not in value:
                self.fail(f"{path}.{key}", "is required")
        return value

    def integer(self, value: Any, path: str, minimum: int) -> int | None:
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and WHOLE.fullmatch(value.strip()):
            number = int(value)
        if number is None:
            self.fail(path, "must be a whole number")
        elif number < minimum:
            self.fail(path, f"must be at least {minimum}")
            number = None
        return number

    def number(self, value: Any, path: str) -> Decimal | None:
        if isinstance(value, float):
            self.fail(path, 'must be exact (a decimal string such as "0.35"), not a float')
            return None
        number: Decimal | None = None
        if isinstance(value, Decimal):
            number = value
        elif isinstance(value, int) and not isinstance(value, bool):
            number = Decimal(value)
        elif isinstance(value, str):
            try:
                number = Decimal(value.strip())
            except ArithmeticError:
                number = None
        if number is None or not number.is_finite():
            self.fail(path, "must be a number")
            return None
        return number

    def ratio(self, value: Any, path: str, *, zero: bool) -> Decimal | None:
        """A rate as a fraction: at least 0 (or above it) and below 1."""
        rate = self.number(value, path)
        if rate is not None and not ((rate >= 0 if zero else rate > 0) and rate < 1):
            self.fail(path, f"must be {'at least' if zero else 'more than'} 0 and less than 1")
            return None
        return rate

    def amount(self, value: Any, path: str, *, zero: bool) -> Decimal | None:
        amount = self.number(value, path)
        if amount is None:
            return None
        if amount < 0 or (amount == 0 and not zero):
            self.fail(path, "must be at least 0" if zero else "must be more than 0")
            return None
        return checked_amount(amount, path, self.fail)

    def increasing(self, values: list[int | None], path: str, key: str) -> None:
        """Ages and years must rise entry by entry (a None is checked elsewhere)."""
        previous: int | None = None
        for i, value in enumerate(values):
            if value is not None and previous is not None and value <= previous:
                self.fail(f"{path}[{i}].{key}", f"must be more than the entry before ({previous})")
            previous = value if value is not None else previous


def check_tariff(data: Any) -> dict[str, Any]:
    """`data` checked and normalised to the shape of `DEFAULT_TARIFF.data` (Decimals for
    rates and amounts, ints for ages and cc), or `Refusal` naming every bad entry."""
    check = _Check()
    if not isinstance(data, Mapping):
        raise Refusal("The motor tariff must be an object", errors={"tariff": "must be an object"})
    for key in data:
        if key not in KEYS:
            check.fail(str(key), "is not part of the motor tariff")
    if data.get("rounding", ROUNDING) != ROUNDING:
        check.fail("rounding", f'is always "{ROUNDING}"')
    for key in KEYS[1:]:
        if key not in data:
            check.fail(key, "is required")

    depreciation = _depreciation(check, data.get("depreciation", []))
    agreed_after = check.integer(
        data.get("agreed_value_after_months", 0), "agreed_value_after_months", 1
    )
    if depreciation and agreed_after is not None:
        oldest = depreciation[-1]["max_age_months"]
        if oldest is not None and oldest < agreed_after:
            check.fail(
                "agreed_value_after_months",
                f"leaves ages from {oldest + 1} months without depreciation",
            )
    bands = _engine_bands(check, data.get("engine_bands_cc", []))
    tariff = {
        "rounding": ROUNDING,
        "depreciation": depreciation,
        "agreed_value_after_months": agreed_after,
        "engine_bands_cc": bands,
        "own_damage_rate_percent": _own_damage(check, data.get("own_damage_rate_percent"), bands),
        "voluntary_deductible_discount": _deductibles(
            check, data.get("voluntary_deductible_discount", [])
        ),
        "no_claim_bonus": _no_claim_bonus(check, data.get("no_claim_bonus", [])),
        "third_party_by_engine_band": _third_party(
            check, data.get("third_party_by_engine_band", []), bands
        ),
    }
    if check.errors:
        count = len(check.errors)
        raise Refusal(
            f"The motor tariff has {count} error{'s' if count > 1 else ''}", errors=check.errors
        )
    return tariff


def _depreciation(check: _Check, value: Any) -> list[dict[str, Any]]:
    out = []
    for i, entry in enumerate(check.entries(value, "depreciation")):
        path = f"depreciation[{i}]"
        item = check.record(entry, path, ("max_age_months", "rate"))
        if item is None:
            continue
        out.append(
            {
                "max_age_months": check.integer(
                    item.get("max_age_months"), f"{path}.max_age_months", 0
                ),
                "rate": check.ratio(item.get("rate"), f"{path}.rate", zero=True),
            }
        )
    check.increasing([e["max_age_months"] for e in out], "depreciation", "max_age_months")
    return out


def _engine_bands(check: _Check, value: Any) -> list[int | None]:
    bands: list[int | None] = []
    entries = check.entries(value, "engine_bands_cc")
    for i, bound in enumerate(entries):
        path = f"engine_bands_cc[{i}]"
        if i == len(entries) - 1:
            if bound is not None:
                check.fail(path, "must be null: the last band has no upper bound")
            bands.append(None)
            continue
        bands.append(check.integer(bound, path, 1))
    previous = 0
    for i, bound in enumerate(bands[:-1]):
        if bound is not None and bound <= previous:
            check.fail(f"engine_bands_cc[{i}]", f"must be more than {previous}")
        previous = bound or previous
    return bands


def _own_damage(check: _Check, value: Any, bands: list[int | None]) -> dict[str, list]:
    if not isinstance(value, Mapping) or not value:
        check.fail("own_damage_rate_percent", "must be an object of zones and their rates")
        return {}
    zones: dict[str, list] = {}
    for zone, rows in value.items():
        base = f"own_damage_rate_percent.{zone}"
        if not isinstance(zone, str) or not zone or zone != zone.strip() or len(zone) > 20:
            check.fail(base, "zone codes are 1 to 20 characters, without spaces around")
        entries = check.entries(rows, base)
        out = []
        for i, entry in enumerate(entries):
            path = f"{base}[{i}]"
            item = check.record(entry, path, ("max_age_months", "rates"))
            if item is None:
                continue
            last = i == len(entries) - 1
            age = item.get("max_age_months")
            if last and age is not None:
                check.fail(f"{path}.max_age_months", "must be null: the oldest band is open")
            age = None if last else check.integer(age, f"{path}.max_age_months", 0)
            rates = check.entries(item.get("rates"), f"{path}.rates")
            if bands and len(rates) != len(bands):
                check.fail(f"{path}.rates", f"must have one rate per engine band ({len(bands)})")
            checked = []
            for j, rate in enumerate(rates):
                number = check.number(rate, f"{path}.rates[{j}]")
                if number is not None and not 0 < number < 100:
                    check.fail(f"{path}.rates[{j}]", "must be more than 0 and less than 100 (%)")
                checked.append(number)
            out.append({"max_age_months": age, "rates": checked})
        check.increasing([e["max_age_months"] for e in out], base, "max_age_months")
        zones[str(zone)] = out
    return zones


def _deductibles(check: _Check, value: Any) -> list[dict[str, Any]]:
    out = []
    seen: set[Decimal] = set()
    for i, entry in enumerate(check.entries(value, "voluntary_deductible_discount")):
        path = f"voluntary_deductible_discount[{i}]"
        item = check.record(entry, path, ("deductible", "rate", "cap"))
        if item is None:
            continue
        deductible = check.amount(item.get("deductible"), f"{path}.deductible", zero=False)
        if deductible is not None and deductible in seen:
            check.fail(f"{path}.deductible", "is listed twice")
        if deductible is not None:
            seen.add(deductible)
        out.append(
            {
                "deductible": deductible,
                "rate": check.ratio(item.get("rate"), f"{path}.rate", zero=False),
                "cap": check.amount(item.get("cap"), f"{path}.cap", zero=True),
            }
        )
    return out


def _no_claim_bonus(check: _Check, value: Any) -> list[dict[str, Any]]:
    out = []
    for i, entry in enumerate(check.entries(value, "no_claim_bonus", allow_empty=True)):
        path = f"no_claim_bonus[{i}]"
        item = check.record(entry, path, ("claim_free_years", "rate"))
        if item is None:
            continue
        out.append(
            {
                "claim_free_years": check.integer(
                    item.get("claim_free_years"), f"{path}.claim_free_years", 1
                ),
                "rate": check.ratio(item.get("rate"), f"{path}.rate", zero=True),
            }
        )
    check.increasing([e["claim_free_years"] for e in out], "no_claim_bonus", "claim_free_years")
    return out


def _third_party(check: _Check, value: Any, bands: list[int | None]) -> list[Decimal | None]:
    entries = check.entries(value, "third_party_by_engine_band")
    if bands and entries and len(entries) != len(bands):
        check.fail(
            "third_party_by_engine_band", f"must have one amount per engine band ({len(bands)})"
        )
    return [
        check.amount(amount, f"third_party_by_engine_band[{i}]", zero=True)
        for i, amount in enumerate(entries)
    ]
