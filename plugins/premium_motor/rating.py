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
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from core.hookspecs import Premium, RateTable, RatingStep, Refusal
from core.money import ZERO, round_cents

from .risk import plain, read_risk, risk_rules
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


class _Tariff:
    """A checked tariff as rating looks it up, worked out once per table rather than
    once per risk: the bounds of its bands (a band is found by bisection, the bounds
    being increasing, as the check makes sure), each band's text, and each rounded
    fixed amount. The values are the tariff's own objects, so a trace is the same as
    when they were looked up entry by entry."""

    def __init__(self, tariff: Mapping[str, Any], currency: str) -> None:
        self.currency = currency
        self.risk_rules = risk_rules(tariff)
        bands = tariff["engine_bands_cc"]
        self.engine_bounds = bands[:-1]  # the last band has no upper bound
        self.band_labels = [_band_label(bands, index) for index in range(len(bands))]
        self.third_party = [
            (amount, round_cents(amount)) for amount in tariff["third_party_by_engine_band"]
        ]
        depreciation = tariff["depreciation"]
        # Every age up to the agreed-value age has an entry (the check).
        self.depreciation_ages = [entry["max_age_months"] for entry in depreciation]
        self.depreciation = [(entry["rate"], _percent(entry["rate"])) for entry in depreciation]
        # Zone -> (the age bounds but the last, open band's; each band's rates).
        self.own_damage = {
            zone: ([row["max_age_months"] for row in rows[:-1]], [row["rates"] for row in rows])
            for zone, rows in tariff["own_damage_rate_percent"].items()
        }
        self.deductibles = {
            entry["deductible"]: _Deductible(entry["deductible"], entry["rate"], entry["cap"])
            for entry in tariff["voluntary_deductible_discount"]
        }
        levels = tariff["no_claim_bonus"]
        self.bonus_years = [level["claim_free_years"] for level in levels]
        # None below the first level: rate 0.
        rates = [Decimal(0), *(level["rate"] for level in levels)]
        self.bonus = [(rate, _percent(rate)) for rate in rates]


class _Deductible:
    """A voluntary deductible's discount: its rate, its cap, and its factor's text. A
    risk's deductible is equal to the entry's (it is looked up by it), and `plain`
    writes equal amounts alike ("5E+3" and "5000.00" as 5,000), so the text is the
    same as if written from the risk's."""

    def __init__(self, deductible: Decimal, rate: Decimal, cap: Decimal) -> None:
        self.rate, self.cap, self.rounded_cap = rate, cap, round_cents(cap)
        self.factor = (
            f"{_percent(rate)} up to {plain(cap, grouping=True)}"
            f" (deductible {plain(deductible, grouping=True)})"
        )


def rate(risk: Mapping[str, Any], table: RateTable) -> Premium:
    """The annual premium of `risk` on `table`, with its trace; `Refusal` naming every
    bad risk field (or every bad entry of a broken table, as `rate_table.<path>`)."""
    tariff = _tariff(table)
    motor = read_risk(risk, tariff.risk_rules)
    trace = _Trace(table.version)
    band = bisect_left(tariff.engine_bounds, motor.engine_cc)
    band_label = tariff.band_labels[band]
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
        depreciation, percent = tariff.depreciation[bisect_left(tariff.depreciation_ages, age)]
        idv = trace.add(
            "idv",
            "Insured declared value",
            f"{percent} depreciation, {age} months",
            0,
            {
                "vehicle_value": motor.vehicle_value,
                "vehicle_age_months": age,
                "depreciation": depreciation,
            },
            round_cents(motor.vehicle_value * (1 - depreciation)),
        )

    # The first age band the age does not exceed; past the last bound, the open band.
    age_bounds, rates = tariff.own_damage[motor.zone]
    od_rate = rates[bisect_left(age_bounds, age)][band]
    own_damage = trace.add(
        "own_damage",
        "Own damage",
        f"{od_rate}% (zone {motor.zone}, {band_label}, {age} months)",
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

    # The highest level reached (years increasing); none below the first level.
    bonus_rate, percent = tariff.bonus[bisect_right(tariff.bonus_years, motor.claim_free_years)]
    bonus_base = own_damage - discount
    bonus = trace.add(
        "no_claim_bonus",
        "No-claim bonus",
        percent,
        -1,
        {
            "own_damage_less_discount": bonus_base,
            "claim_free_years": motor.claim_free_years,
            "rate": bonus_rate,
        },
        round_cents(bonus_base * bonus_rate),
    )

    amount, rounded = tariff.third_party[band]
    third_party = trace.add(
        "third_party",
        "Third party",
        band_label,
        1,
        {"engine_cc": motor.engine_cc, "amount": amount},
        rounded,
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
    return Premium(premium=premium, currency=tariff.currency, trace=tuple(trace.steps))


# Checking a whole tariff costs more than rating one risk on it. A RateTable is frozen
# and core never changes a table's data once stored, so the check of one table object
# (and the lookups made from it) is remembered for as long as that object lives (the
# default tariff: always; a tenant's table: while core keeps it, e.g. through a bulk
# re-rating).
_checked: dict[int, tuple[weakref.ref[RateTable], _Tariff]] = {}


def _tariff(table: RateTable) -> _Tariff:
    """The table's data checked as an upload is (a stored table may have been edited,
    or kept its decimals as strings), with its currency. A broken table says so rather
    than rate."""
    key = id(table)
    remembered = _checked.get(key)
    if remembered is not None and remembered[0]() is table:
        return remembered[1]
    tariff = _Tariff(*_check(table))
    _checked[key] = (weakref.ref(table, lambda _: _checked.pop(key, None)), tariff)
    return tariff


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
    trace: _Trace, tariff: _Tariff, deductible: Decimal, own_damage: Decimal
) -> Decimal:
    name, label = "voluntary_deductible_discount", "Voluntary deductible discount"
    entry = tariff.deductibles.get(deductible)
    if entry is None:  # no voluntary deductible (0): no discount
        inputs = {"own_damage": own_damage, "voluntary_deductible": deductible}
        return trace.add(name, label, "no voluntary deductible", -1, inputs, ZERO)
    rate, cap = entry.rate, entry.cap
    return trace.add(
        name,
        label,
        entry.factor,
        -1,
        {"own_damage": own_damage, "voluntary_deductible": deductible, "rate": rate, "cap": cap},
        # Rounded first, then capped (PRODUCT.md step 3).
        min(round_cents(own_damage * rate), entry.rounded_cap),
    )


def _band_label(bands: Sequence[int | None], index: int) -> str:
    """ "up to 1000cc", "1001-1500cc", "over 1500cc", from the tariff's bounds."""
    upper = bands[index]
    lower = bands[index - 1] if index else None
    if upper is None:
        return f"over {lower}cc" if lower is not None else "any engine"
    if lower is None:
        return f"up to {upper}cc"
    return f"{lower + 1}-{upper}cc"


def _percent(ratio: Decimal) -> str:
    """0.35 -> "35%", 0.125 -> "12.5%"."""
    return f"{(ratio * 100).normalize():f}%"
