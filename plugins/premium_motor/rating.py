"""Rating a motor private car on a tariff (PRODUCT.md "Motor private car").

`rate(risk, table)` is a pure function of its arguments: the same risk on the same
table gives the same premium and the same trace, so a stored quote replays to the cent.

Steps, each one `RatingStep` named for good (renewals compare them by name), each
rounded half-up to the cent, and each reproducible from its own `inputs`:

1. `idv` (sign 0): vehicle_value x (1 - depreciation by age), or the agreed value
   beyond `agreed_value_after_months`;
2. `own_damage` (+1): IDV x rate % by zone, age band and engine band;
3. `voluntary_deductible_discount` (-1): own damage x rate, then capped;
4. `no_claim_bonus` (-1): (own damage - discount) x rate by claim-free years;
5. `third_party` (+1): the amount for the engine band;
6. `premium` (0): own damage - discount - bonus + third party, before tax.

The sum of `sign x result` over the steps is the premium. Each `factor` reads on its
own ("35%", "3.283% (zone A, 1001-1500cc, 36 months)"), so a renewal can put the old
and new side by side: "no-claim bonus 35% → 45%: -1,021.53".
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from core.hookspecs import Premium, RateTable, RatingStep, Refusal
from core.money import ZERO, round_cents

from .risk import plain, read_risk
from .tariff import CODE, check_tariff


class _Trace:
    """The steps of one rating, in order, all on one rate-table version."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.steps: list[RatingStep] = []

    def add(
        self,
        name: str,
        label: str,
        factor: str,
        sign: int,
        inputs: dict[str, Any],
        result: Decimal,
    ) -> Decimal:
        self.steps.append(RatingStep(name, inputs, result, self.version, label, factor, sign))
        return result


def rate(risk: Mapping[str, Any], table: RateTable) -> Premium:
    """The annual premium of `risk` on `table`, with its trace; `Refusal` naming every
    bad risk field (or every bad entry of a broken table, as `rate_table.<path>`)."""
    tariff, currency = _tariff(table)
    motor = read_risk(risk, tariff)
    trace = _Trace(table.version)
    bands = tariff["engine_bands_cc"]
    band = next(i for i, bound in enumerate(bands) if bound is None or motor.engine_cc <= bound)
    age = motor.vehicle_age_months

    if motor.agreed_value is not None:
        idv = trace.add(
            "idv",
            "Insured declared value",
            f"agreed value, {age} months",
            0,
            {"agreed_value": motor.agreed_value, "vehicle_age_months": age},
            round_cents(motor.agreed_value),
        )
    else:
        depreciation = _first_at_least(tariff["depreciation"], age)["rate"]
        idv = trace.add(
            "idv",
            "Insured declared value",
            f"{_percent(depreciation)} depreciation, {age} months",
            0,
            {
                "vehicle_value": motor.vehicle_value,
                "vehicle_age_months": age,
                "depreciation": depreciation,
            },
            round_cents(motor.vehicle_value * (1 - depreciation)),
        )

    od_rate = _first_at_least(tariff["own_damage_rate_percent"][motor.zone], age)["rates"][band]
    own_damage = trace.add(
        "own_damage",
        "Own damage",
        f"{od_rate}% (zone {motor.zone}, {_band_label(bands, band)}, {age} months)",
        1,
        {
            "idv": idv,
            "rate_percent": od_rate,
            "zone": motor.zone,
            "engine_cc": motor.engine_cc,
            "vehicle_age_months": age,
        },
        round_cents(idv * od_rate / 100),
    )

    discount = _deductible_discount(trace, tariff, motor.voluntary_deductible, own_damage)

    bonus_rate = _no_claim_bonus_rate(tariff["no_claim_bonus"], motor.claim_free_years)
    bonus_base = own_damage - discount
    bonus = trace.add(
        "no_claim_bonus",
        "No-claim bonus",
        _percent(bonus_rate),
        -1,
        {
            "own_damage_less_discount": bonus_base,
            "claim_free_years": motor.claim_free_years,
            "rate": bonus_rate,
        },
        round_cents(bonus_base * bonus_rate),
    )

    third_party = trace.add(
        "third_party",
        "Third party",
        _band_label(bands, band),
        1,
        {"engine_cc": motor.engine_cc, "amount": tariff["third_party_by_engine_band"][band]},
        round_cents(tariff["third_party_by_engine_band"][band]),
    )

    premium = trace.add(
        "premium",
        "Premium",
        "before tax",
        0,
        {
            "own_damage": own_damage,
            "voluntary_deductible_discount": discount,
            "no_claim_bonus": bonus,
            "third_party": third_party,
        },
        own_damage - discount - bonus + third_party,
    )
    return Premium(premium=premium, currency=currency, trace=tuple(trace.steps))


# Checking a whole tariff costs more than rating one risk on it. A RateTable is frozen
# and core never changes a table's data once stored, so the check of one table object
# is remembered for as long as that object lives (the default tariff: always; a
# tenant's table: while core keeps it, e.g. through a bulk re-rating).
_checked: dict[int, tuple[weakref.ref[RateTable], dict[str, Any], str]] = {}


def _tariff(table: RateTable) -> tuple[dict[str, Any], str]:
    """The table's data checked as an upload is (a stored table may have been edited,
    or kept its decimals as strings), and its currency. A broken table says so rather
    than rate."""
    key = id(table)
    remembered = _checked.get(key)
    if remembered is not None and remembered[0]() is table:
        return remembered[1], remembered[2]
    tariff, currency = _check(table)
    _checked[key] = (weakref.ref(table, lambda _: _checked.pop(key, None)), tariff, currency)
    return tariff, currency


def _check(table: RateTable) -> tuple[dict[str, Any], str]:
    errors = {}
    if table.product_line != CODE:
        errors["rate_table"] = f"is for {table.product_line}, not {CODE}"
    if not table.currency:
        errors["rate_table.currency"] = "is required"
    tariff: dict[str, Any] = {}
    try:
        tariff = check_tariff(table.data)
    except Refusal as refused:
        errors.update({f"rate_table.{path}": reason for path, reason in refused.errors.items()})
    if errors or not table.currency:
        raise Refusal(f"Rate table {table.version} cannot rate this line", errors=errors)
    return tariff, table.currency


def _deductible_discount(
    trace: _Trace, tariff: Mapping[str, Any], deductible: Decimal, own_damage: Decimal
) -> Decimal:
    name, label = "voluntary_deductible_discount", "Voluntary deductible discount"
    entry = next(
        (e for e in tariff["voluntary_deductible_discount"] if e["deductible"] == deductible),
        None,
    )
    if entry is None:  # no voluntary deductible (0): no discount
        inputs = {"own_damage": own_damage, "voluntary_deductible": deductible}
        return trace.add(name, label, "no voluntary deductible", -1, inputs, ZERO)
    rate, cap = entry["rate"], entry["cap"]
    return trace.add(
        name,
        label,
        f"{_percent(rate)} up to {plain(cap, grouping=True)}"
        f" (deductible {plain(deductible, grouping=True)})",
        -1,
        {"own_damage": own_damage, "voluntary_deductible": deductible, "rate": rate, "cap": cap},
        # Rounded first, then capped (PRODUCT.md step 3).
        min(round_cents(own_damage * rate), round_cents(cap)),
    )


def _first_at_least(bands: Sequence[Mapping[str, Any]], age: int) -> Mapping[str, Any]:
    """The first age band whose `max_age_months` the age does not exceed (None: open).
    The tariff check makes sure one does, below the agreed-value age."""
    return next(b for b in bands if b["max_age_months"] is None or age <= b["max_age_months"])


def _band_label(bands: Sequence[int | None], index: int) -> str:
    """ "up to 1000cc", "1001-1500cc", "over 1500cc", from the tariff's bounds."""
    upper = bands[index]
    lower = bands[index - 1] if index else None
    if upper is None:
        return f"over {lower}cc" if lower is not None else "any engine"
    if lower is None:
        return f"up to {upper}cc"
    return f"{lower + 1}-{upper}cc"


def _no_claim_bonus_rate(levels: Sequence[Mapping[str, Any]], claim_free_years: int) -> Decimal:
    """The rate of the highest level reached; none below the first level."""
    reached = [level["rate"] for level in levels if claim_free_years >= level["claim_free_years"]]
    return reached[-1] if reached else Decimal(0)


def _percent(ratio: Decimal) -> str:
    """0.35 -> "35%", 0.125 -> "12.5%"."""
    return f"{(ratio * 100).normalize():f}%"
