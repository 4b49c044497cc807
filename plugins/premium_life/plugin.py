"""Term life: the product line and its default basis (PRODUCT.md: the Standard
Ultimate Life Table by Makeham's law, 5% interest, the default loadings).

A declaration only: the equivalence-principle rating comes with the products work,
so this plugin does not implement `powerbuyer_compute_premium` yet.
"""

from __future__ import annotations

from decimal import Decimal as D

from core.hookspecs import (
    Coverage,
    LapseRules,
    ProductLine,
    RateTable,
    RiskField,
    hookimpl,
)

CODE = "term_life"

DEFAULT_BASIS = RateTable(
    product_line=CODE,
    version="default-1",
    # The per-policy expense is in the policy's currency; no amount here is tied to one.
    currency=None,
    data={
        "mortality": {
            "table": "SULT",
            "law": "makeham",
            "A": D("0.00022"),
            "B": D("0.0000027"),
            "c": D("1.124"),
        },
        "interest": D("0.05"),
        "loadings": {
            "first_premium": D("0.40"),
            "later_premiums": D("0.05"),
            "per_policy_per_year": D("50"),
        },
        "age": "nearest birthday",
        "rounding": "half-up to the cent, at the end only",
    },
)

TERM_LIFE = ProductLine(
    code=CODE,
    name="Term life",
    risk_fields=(
        RiskField(
            "issue_age",
            "Age at issue",
            "integer",
            required=False,
            help="Or give the date of birth; the age is then taken nearest birthday.",
        ),
        RiskField("date_of_birth", "Date of birth", "date", required=False),
        RiskField("term_years", "Term (years)", "integer"),
        RiskField("sum_assured", "Sum assured", "money"),
        RiskField("sex", "Sex", "choice", choices=("female", "male")),
        RiskField("smoker", "Smoker", "boolean"),
    ),
    coverages=(Coverage("death", "Death benefit", limit_basis="sum assured"),),
    default_rate_table=DEFAULT_BASIS,
    lapse=LapseRules(
        grace_days={"annual": 30, "half_yearly": 30, "quarterly": 30, "monthly": 15},
        revival_years=5,
        revival_requires=("arrears", "interest"),
    ),
)


@hookimpl
def powerbuyer_product_lines() -> list[ProductLine]:
    return [TERM_LIFE]
