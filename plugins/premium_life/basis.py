"""A term-life rating basis: mortality by sex and smoker status, interest, expense
loadings and the product's limits, read from a `RateTable.data` and checked.

The data shape (plain values; numbers as Decimal, int or decimal strings, never float):

    {
      "basis": "SULT",                       # the basis' name, shown in the trace
      "mortality": [                         # one entry per sex / smoker status
        {"sex": None, "smoker": None,        # None: any; else "male"/"female", bool
         "law": "makeham", "A": ..., "B": ..., "c": ..., "max_age": 120},
        {"sex": "male", "smoker": True, "law": "table", "name": "...",
         "first_age": 18, "q": [q_18, q_19, ...]},         # contiguous ages
      ],
      "interest": 0.05,
      "loadings": {"first_premium": r1, "later_premiums": r, "per_policy_per_year": f},
      "limits": {"min_age", "max_age", "min_term", "max_term", "max_age_at_expiry",
                 "min_sum_assured" (optional), "max_sum_assured" (optional)},
    }

A risk takes the most specific entry: its sex and smoker status, then its sex for any
status, then its status for either sex, then the entry for anyone. The same reader
checks an upload (`plugins.premium_life.upload`) and a stored table before rating,
so a table that rated once always rates the same way; a bad one is a `Refusal` naming
the entry (`mortality[1].q[12]`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from core.hookspecs import Refusal
from plugins.premium_life import actuarial

SEXES = ("female", "male")
MAKEHAM, TABLE = "makeham", "table"

DEFAULT_INTEREST = Decimal("0.05")
DEFAULT_LOADINGS: dict[str, Decimal] = {
    "first_premium": Decimal("0.40"),
    "later_premiums": Decimal("0.05"),
    "per_policy_per_year": Decimal("50"),
}
DEFAULT_LIMITS: dict[str, Any] = {
    "min_age": 18,
    "max_age": 70,
    "min_term": 5,
    "max_term": 40,
    "max_age_at_expiry": 85,
    "min_sum_assured": None,
    "max_sum_assured": None,
}
# Whole-life values on a Makeham law need an end; survival past 120 is negligible.
MAKEHAM_MAX_AGE = 120


@dataclass(frozen=True)
class Mortality:
    """One entry of the basis: who it is for, and their one-year survival."""

    sex: str | None
    smoker: bool | None
    name: str
    law: str
    first_age: int
    # The last age whose q_x is known: survival is defined for ages first..last.
    last_age: int
    makeham: tuple[Decimal, Decimal, Decimal] | None = None
    q: tuple[Decimal, ...] = ()

    def q_at(self, age: int) -> Decimal:
        if self.makeham is not None:
            return 1 - actuarial.makeham_survival(age, *self.makeham)
        return self.q[age - self.first_age]

    def survival(self, age: int, years: int) -> list[Decimal]:
        """[p_age, ..., p_{age+years-1}]; the caller keeps within first..last age."""
        if not (self.first_age <= age and age + years - 1 <= self.last_age):
            raise ValueError(f"ages {age}..{age + years - 1} are outside {self.describe()}")
        if self.makeham is not None:
            return [actuarial.makeham_survival(x, *self.makeham) for x in range(age, age + years)]
        start = age - self.first_age
        return [1 - q for q in self.q[start : start + years]]

    def covers(self) -> str:
        """Whom the entry is for: "anyone", "male", "either sex, smokers"."""
        if self.sex is None and self.smoker is None:
            return "anyone"
        status = {None: "", True: ", smokers", False: ", non-smokers"}[self.smoker]
        return f"{self.sex or 'either sex'}{status}"

    def describe(self) -> str:
        if self.makeham is not None:
            a, b, c = self.makeham
            return f"{self.name} (Makeham A={a}, B={b}, c={c})"
        return f"{self.name} (q_x, ages {self.first_age}-{self.last_age})"


@dataclass(frozen=True)
class Limits:
    min_age: int
    max_age: int
    min_term: int
    max_term: int
    max_age_at_expiry: int
    min_sum_assured: Decimal | None = None
    max_sum_assured: Decimal | None = None


@dataclass(frozen=True)
class Basis:
    name: str
    mortality: tuple[Mortality, ...]
    interest: Decimal
    first_premium_loading: Decimal
    later_premium_loading: Decimal
    per_policy_per_year: Decimal
    limits: Limits

    def mortality_for(self, sex: str, smoker: bool) -> Mortality | None:
        for wanted in ((sex, smoker), (sex, None), (None, smoker), (None, None)):
            for entry in self.mortality:
                if (entry.sex, entry.smoker) == wanted:
                    return entry
        return None


# --- reading ---------------------------------------------------------------------------


class _Errors:
    """Collects every bad entry, so one Refusal names them all."""

    def __init__(self) -> None:
        self.found: dict[str, str] = {}

    def add(self, path: str, reason: str) -> None:
        self.found.setdefault(path, reason)

    def raise_any(self, what: str) -> None:
        if self.found:
            raise Refusal(f"the {what} is not valid", errors=self.found)


def number(value: Any) -> Decimal:
    """A Decimal from a Decimal, an int or a decimal string; floats are refused."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        kind = "a float" if isinstance(value, float) else type(value).__name__
        raise ValueError(f'must be a decimal number (a string such as "0.05"), not {kind}')
    try:
        result = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise ValueError("is not a number") from None
    if not result.is_finite():
        raise ValueError("is not a number")
    return result


def whole(value: Any) -> int:
    """An int from an int or a string of digits (no bools, no floats, no 40.0)."""
    if isinstance(value, bool):
        raise ValueError("must be a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise ValueError("must be a whole number")


def _get(data: Mapping[str, Any], key: str, path: str, errors: _Errors, read: Any) -> Any:
    if key not in data or data[key] is None:
        errors.add(path, "is required")
        return None
    try:
        return read(data[key])
    except ValueError as exc:
        errors.add(path, str(exc))
        return None


def _smoker(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ValueError("must be true, false or null (either)")


def _sex(value: Any) -> str | None:
    if value is None or value in SEXES:
        return value
    raise ValueError('must be "male", "female" or null (either)')


def read_mortality(entry: Any, path: str, errors: _Errors, default_name: str) -> Mortality | None:
    """One `mortality` entry, or None (with the reasons in `errors`)."""
    if not isinstance(entry, Mapping):
        errors.add(path, "must be an object")
        return None
    sex = smoker = None
    try:
        sex = _sex(entry.get("sex"))
    except ValueError as exc:
        errors.add(f"{path}.sex", str(exc))
    try:
        smoker = _smoker(entry.get("smoker"))
    except ValueError as exc:
        errors.add(f"{path}.smoker", str(exc))
    name = entry.get("name") or default_name
    if not isinstance(name, str):
        errors.add(f"{path}.name", "must be text")
        return None
    law = entry.get("law", TABLE if "q" in entry else None)
    if law == MAKEHAM:
        return _read_makeham(entry, path, errors, sex, smoker, name)
    if law == TABLE:
        return _read_q_table(entry, path, errors, sex, smoker, name)
    errors.add(f"{path}.law", f'must be "{MAKEHAM}" or "{TABLE}"')
    return None


def _read_makeham(
    entry: Mapping[str, Any],
    path: str,
    errors: _Errors,
    sex: str | None,
    smoker: bool | None,
    name: str,
) -> Mortality | None:
    before = len(errors.found)
    a = _get(entry, "A", f"{path}.A", errors, number)
    b = _get(entry, "B", f"{path}.B", errors, number)
    c = _get(entry, "c", f"{path}.c", errors, number)
    max_age = MAKEHAM_MAX_AGE
    if entry.get("max_age") is not None:
        max_age = _get(entry, "max_age", f"{path}.max_age", errors, whole)
    if a is not None and a < 0:
        errors.add(f"{path}.A", "must not be negative")
    if b is not None and b <= 0:
        errors.add(f"{path}.B", "must be more than 0")
    if c is not None and c <= 1:
        errors.add(f"{path}.c", "must be more than 1")
    if max_age is not None and not 1 <= max_age <= 150:
        errors.add(f"{path}.max_age", "must be between 1 and 150")
    if len(errors.found) > before:
        return None
    assert a is not None and b is not None and c is not None and max_age is not None
    return Mortality(sex, smoker, name, MAKEHAM, 0, max_age - 1, makeham=(a, b, c))


def _read_q_table(
    entry: Mapping[str, Any],
    path: str,
    errors: _Errors,
    sex: str | None,
    smoker: bool | None,
    name: str,
) -> Mortality | None:
    raw = entry.get("q")
    if isinstance(raw, Mapping):
        # {"18": q_18, "19": q_19, ...}: the ages must follow one another.
        try:
            ages = sorted((whole(age), value) for age, value in raw.items())
        except ValueError:
            errors.add(f"{path}.q", "ages must be whole numbers")
            return None
        if not ages:
            errors.add(f"{path}.q", "has no rates")
            return None
        first_age = ages[0][0]
        for index, (age, _) in enumerate(ages):
            if age != first_age + index:
                errors.add(
                    f"{path}.q.{age}", f"ages must be contiguous; {first_age + index} is missing"
                )
                return None
        values = [value for _, value in ages]
        label = [f"{path}.q.{age}" for age, _ in ages]
    elif isinstance(raw, Sequence) and not isinstance(raw, str | bytes):
        first_age = _get(entry, "first_age", f"{path}.first_age", errors, whole)
        if first_age is None:
            return None
        if not raw:
            errors.add(f"{path}.q", "has no rates")
            return None
        values = list(raw)
        label = [f"{path}.q[{index}]" for index in range(len(values))]
    else:
        errors.add(f"{path}.q", "must be a list of rates from first_age, or {age: rate}")
        return None
    if first_age < 0:
        errors.add(f"{path}.first_age", "must not be negative")
        return None
    rates: list[Decimal] = []
    bad = False
    for index, (where, value) in enumerate(zip(label, values, strict=True)):
        try:
            q = number(value)
        except ValueError as exc:
            errors.add(where, f"q at age {first_age + index} {exc}")
            bad = True
            continue
        if not 0 <= q <= 1:
            errors.add(where, f"q at age {first_age + index} must be between 0 and 1")
            bad = True
        rates.append(q)
    if bad:
        return None
    return Mortality(
        sex, smoker, name, TABLE, first_age, first_age + len(rates) - 1, q=tuple(rates)
    )


def _read_limits(raw: Any, errors: _Errors) -> Limits | None:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        errors.add("limits", "must be an object")
        return None
    values: dict[str, Any] = {}
    for key, default in DEFAULT_LIMITS.items():
        value = raw.get(key, default)
        if value is None:
            values[key] = None
            continue
        try:
            values[key] = number(value) if key.endswith("sum_assured") else whole(value)
        except ValueError as exc:
            errors.add(f"limits.{key}", str(exc))
    for key in set(raw) - set(DEFAULT_LIMITS):
        errors.add(f"limits.{key}", "is not a limit of term life")
    if errors.found:
        return None
    for key in ("min_age", "max_age", "min_term", "max_term", "max_age_at_expiry"):
        if values[key] is None:
            errors.add(f"limits.{key}", "is required")
        elif values[key] < 0:
            errors.add(f"limits.{key}", "must not be negative")
    if errors.found:
        return None
    if values["min_age"] > values["max_age"]:
        errors.add("limits.max_age", "must not be below min_age")
    if not 1 <= values["min_term"] <= values["max_term"]:
        errors.add("limits.max_term", "must be at least min_term, which must be at least 1")
    low, high = values["min_sum_assured"], values["max_sum_assured"]
    if low is not None and low <= 0:
        errors.add("limits.min_sum_assured", "must be more than 0")
    if high is not None and (high <= 0 or (low is not None and high < low)):
        errors.add("limits.max_sum_assured", "must be more than 0 and not below the minimum")
    return None if errors.found else Limits(**values)


def _read_rate(
    data: Mapping[str, Any], path: str, key: str, default: Decimal, errors: _Errors
) -> Decimal | None:
    value = data.get(key, default)
    try:
        rate = number(value)
    except ValueError as exc:
        errors.add(path, str(exc))
        return None
    # 1 or more would leave nothing of the premium (or of the first one) for the risk.
    if not 0 <= rate < 1:
        errors.add(path, "must be at least 0 and less than 1")
        return None
    return rate


def load_basis(data: Mapping[str, Any]) -> Basis:
    """The basis a rate table's data describes; `Refusal` naming each bad entry."""
    errors = _Errors()
    if not isinstance(data, Mapping):
        raise Refusal("the rate table is not valid", errors={"data": "must be an object"})
    name = data.get("basis") or "term life basis"
    if not isinstance(name, str):
        errors.add("basis", "must be text")
        name = "term life basis"
    raw_mortality = data.get("mortality")
    mortality: list[Mortality] = []
    if (
        not isinstance(raw_mortality, Sequence)
        or isinstance(raw_mortality, str)
        or not raw_mortality
    ):
        errors.add("mortality", "must list at least one mortality table")
    else:
        seen: dict[tuple[str | None, bool | None], int] = {}
        for index, entry in enumerate(raw_mortality):
            found = read_mortality(entry, f"mortality[{index}]", errors, name)
            if found is None:
                continue
            key = (found.sex, found.smoker)
            if key in seen:
                errors.add(
                    f"mortality[{index}]",
                    f"a second table for {found.covers()} (mortality[{seen[key]}] is one)",
                )
            seen[key] = index
            mortality.append(found)
    interest = _read_rate(data, "interest", "interest", DEFAULT_INTEREST, errors)
    loadings = data.get("loadings") or {}
    if not isinstance(loadings, Mapping):
        errors.add("loadings", "must be an object")
        loadings = {}
    for key in set(loadings) - set(DEFAULT_LOADINGS):
        errors.add(f"loadings.{key}", "is not a loading of term life")
    r1 = _read_rate(
        loadings,
        "loadings.first_premium",
        "first_premium",
        DEFAULT_LOADINGS["first_premium"],
        errors,
    )
    r = _read_rate(
        loadings,
        "loadings.later_premiums",
        "later_premiums",
        DEFAULT_LOADINGS["later_premiums"],
        errors,
    )
    f = None
    try:
        f = number(loadings.get("per_policy_per_year", DEFAULT_LOADINGS["per_policy_per_year"]))
        if f < 0:
            errors.add("loadings.per_policy_per_year", "must not be negative")
    except ValueError as exc:
        errors.add("loadings.per_policy_per_year", str(exc))
    limits = _read_limits(data.get("limits"), errors)
    errors.raise_any("rate table")
    assert interest is not None and r1 is not None and r is not None and f is not None
    assert limits is not None
    return Basis(name, tuple(mortality), interest, r1, r, f, limits)


def dump_basis(basis: Basis) -> dict[str, Any]:
    """The canonical data of `basis`, as stored in `RateTable.data`."""
    mortality: list[dict[str, Any]] = []
    for entry in basis.mortality:
        item: dict[str, Any] = {"sex": entry.sex, "smoker": entry.smoker, "name": entry.name}
        if entry.makeham is not None:
            a, b, c = entry.makeham
            item.update(law=MAKEHAM, A=a, B=b, c=c, max_age=entry.last_age + 1)
        else:
            item.update(law=TABLE, first_age=entry.first_age, q=list(entry.q))
        mortality.append(item)
    limits = basis.limits
    return {
        "basis": basis.name,
        "mortality": mortality,
        "interest": basis.interest,
        "loadings": {
            "first_premium": basis.first_premium_loading,
            "later_premiums": basis.later_premium_loading,
            "per_policy_per_year": basis.per_policy_per_year,
        },
        "limits": {
            "min_age": limits.min_age,
            "max_age": limits.max_age,
            "min_term": limits.min_term,
            "max_term": limits.max_term,
            "max_age_at_expiry": limits.max_age_at_expiry,
            "min_sum_assured": limits.min_sum_assured,
            "max_sum_assured": limits.max_sum_assured,
        },
        "age": "nearest birthday",
        "rounding": "half-up to the cent, at the end only",
    }
