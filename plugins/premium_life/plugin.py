"""Term life: the product line, its default basis (PRODUCT.md: the Standard Ultimate
Life Table by Makeham's law, 5% interest, the default loadings) and its hooks.

Rating is the equivalence principle (`rating`, on the maths of `actuarial`); a rate
table's data is a basis in the shape `basis` documents, the default one below or one a
tenant uploads as SOA XTbML, JSON or CSV (`upload`, `xtbml`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal as D
from typing import Any

from core.hookspecs import (
    Coverage,
    LapseRules,
    Premium,
    ProductLine,
    RateTable,
    RiskField,
    hookimpl,
)
from plugins.premium_life import rating, upload

CODE = "term_life"

DEFAULT_BASIS = RateTable(
    product_line=CODE,
    version="default-1",
    # The per-policy expense is in the policy's currency; no amount here is tied to one.
    currency=None,
    data={
        "basis": "SULT",
        # The same Makeham law for both sexes, smokers and non-smokers alike.
        "mortality": [
            {
                "sex": None,
                "smoker": None,
                "name": "Standard Ultimate Life Table",
                "law": "makeham",
                "A": D("0.00022"),
                "B": D("0.0000027"),
                "c": D("1.124"),
                "max_age": 120,
            }
        ],
        "interest": D("0.05"),
        "loadings": {
            "first_premium": D("0.40"),
            "later_premiums": D("0.05"),
            "per_policy_per_year": D("50"),
        },
        "limits": {
            "min_age": 18,
            "max_age": 70,
            "min_term": 5,
            "max_term": 40,
            "max_age_at_expiry": 85,
            "min_sum_assured": None,
            "max_sum_assured": None,
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


@hookimpl
def powerbuyer_compute_premium(
    product_line: str, risk: Mapping[str, Any], rate_table: RateTable, start_date: date
) -> Premium | None:
    if product_line != CODE:
        return None
    return rating.rate(product_line, risk, rate_table, start_date)


@hookimpl
def powerbuyer_parse_rate_table(
    product_line: str, filename: str, content: bytes
) -> RateTable | None:
    if product_line != CODE:
        return None
    return upload.parse_upload(product_line, filename, content)
