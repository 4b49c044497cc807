"""Rate one term-life risk on a basis: the equivalence-principle premiums and the trace.

The premium is computed from full precision (`actuarial.PRECISION` digits) and only
the net and gross premiums are rounded, half-up to the cent, at the end. The trace
shows each intermediate figure quantized to `TRACE_PLACES` decimal places for the
reader; replaying a quote means rating its stored risk on its stored rate table
again, which gives the same premium and the same trace to the last digit.

Steps, by stable name: `age`, `mortality_basis` (result q_x at the issue age),
`interest` (result v), `survival_to_expiry` (n p_x), `term_assurance_A1`,
`annuity_due`, `net_premium` (+1), `expense_loading` (+1: the rounded gross minus the
rounded net premium) and `gross_premium` (0: the total, with the unrounded value and
the rounding in its inputs). The signed steps add up to the premium.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

from core.hookspecs import Premium, RateTable, RatingStep, Refusal
from core.money import round_cents
from plugins.premium_life import actuarial
from plugins.premium_life.basis import Basis, load_basis
from plugins.premium_life.risk import Risk, read_risk

TRACE_PLACES = 10
_QUANTUM = Decimal(1).scaleb(-TRACE_PLACES)
# SULT is the Society of Actuaries' (US) table; a tenant's own table names its currency.
DEFAULT_CURRENCY = "USD"
ROUNDING = "half-up to the cent, at the end only"


def shown(value: Decimal) -> Decimal:
    """An intermediate figure as the trace shows it."""
    return value.quantize(_QUANTUM, rounding=ROUND_HALF_UP)


def _percent(rate: Decimal) -> str:
    return f"{(rate * 100).normalize():f}%"


def rate(
    product_line: str, raw_risk: Mapping[str, Any], rate_table: RateTable, start_date: date
) -> Premium:
    if rate_table.product_line != product_line:
        raise Refusal(
            f"rate table {rate_table.version} is for {rate_table.product_line}",
            errors={"rate_table": f"is for {rate_table.product_line}, not {product_line}"},
        )
    # The caller's decimal context must not change a cent: everything, the reading of
    # the risk included, runs in the plugin's own.
    with localcontext(actuarial.context()):
        basis = load_basis(rate_table.data)
        risk = read_risk(raw_risk, start_date, basis)
        steps = _rate(risk, basis, start_date, rate_table.version)
    return Premium(steps[-1].result, rate_table.currency or DEFAULT_CURRENCY, steps)


def _rate(risk: Risk, basis: Basis, start_date: date, version: str) -> tuple[RatingStep, ...]:
    x, n, sa = risk.age, risk.term_years, risk.sum_assured
    ps = risk.mortality.survival(x, n)
    i = basis.interest
    a1 = actuarial.term_assurance(ps, i)
    annuity = actuarial.annuity_due(ps, i)
    net = actuarial.net_premium(sa, a1, annuity)
    gross = actuarial.gross_premium(
        sa,
        a1,
        annuity,
        basis.first_premium_loading,
        basis.later_premium_loading,
        basis.per_policy_per_year,
    )
    net_cents, gross_cents = round_cents(net), round_cents(gross)

    def step(name: str, label: str, result: Decimal, factor: str, **inputs: Any) -> RatingStep:
        return RatingStep(name, inputs, result, version, label=label, factor=factor)

    if risk.date_of_birth is not None:
        age_inputs: dict[str, Any] = {
            "date_of_birth": risk.date_of_birth.isoformat(),
            "start_date": start_date.isoformat(),
            "age_basis": "nearest birthday",
        }
    else:
        age_inputs = {"issue_age": x}
    mortality = risk.mortality
    mortality_inputs: dict[str, Any] = {
        "basis": basis.name,
        "table": mortality.name,
        "law": mortality.law,
        "sex": risk.sex,
        "smoker": risk.smoker,
        "table_covers": mortality.covers(),
    }
    if mortality.makeham is not None:
        mortality_inputs.update(zip(("A", "B", "c"), mortality.makeham, strict=True))
    else:
        mortality_inputs.update(first_age=mortality.first_age, last_age=mortality.last_age)
    loadings = {
        "first_premium": basis.first_premium_loading,
        "later_premiums": basis.later_premium_loading,
        "per_policy_per_year": basis.per_policy_per_year,
    }
    smoker = "smoker" if risk.smoker else "non-smoker"
    return (
        step("age", "Age at issue", Decimal(x), f"{x}", **age_inputs),
        step(
            "mortality_basis",
            "Mortality",
            shown(mortality.q_at(x)),
            f"{mortality.describe()}, {risk.sex} {smoker}",
            **mortality_inputs,
        ),
        step(
            "interest",
            "Interest (discount factor v)",
            shown(actuarial.discount_factor(i)),
            _percent(i),
            interest=i,
        ),
        step(
            "survival_to_expiry",
            f"Probability of surviving {n} years",
            shown(actuarial.survival_curve(ps)[-1]),
            f"{n}p{x}",
            age=x,
            term_years=n,
        ),
        step(
            "term_assurance_A1",
            "Term assurance A1",
            shown(a1),
            f"A1({x}:{n})",
            age=x,
            term_years=n,
            interest=i,
        ),
        step(
            "annuity_due",
            "Annuity-due",
            shown(annuity),
            f"ä({x}:{n})",
            age=x,
            term_years=n,
            interest=i,
        ),
        RatingStep(
            "net_premium",
            {
                "sum_assured": sa,
                "term_assurance_A1": shown(a1),
                "annuity_due": shown(annuity),
                "unrounded": shown(net),
                "rounding": ROUNDING,
            },
            net_cents,
            version,
            label="Net premium",
            factor="sum assured x A1 / ä",
            sign=1,
        ),
        RatingStep(
            "expense_loading",
            {**loadings, "unrounded": shown(gross - net)},
            gross_cents - net_cents,
            version,
            label="Expense loading",
            factor=(
                f"{_percent(basis.first_premium_loading)} of the first premium, "
                f"{_percent(basis.later_premium_loading)} of later ones, "
                f"{basis.per_policy_per_year} a year"
            ),
            sign=1,
        ),
        step(
            "gross_premium",
            "Gross annual premium",
            gross_cents,
            "(SA x A1 + f x ä) / (ä (1 - r) - (r1 - r))",
            unrounded=shown(gross),
            rounding=ROUNDING,
        ),
    )
