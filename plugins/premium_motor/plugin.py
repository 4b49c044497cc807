"""Motor private car: the product line, its default tariff (PRODUCT.md, India Motor
Tariff structure) and its rating.

The hooks only dispatch: rating is `rating.rate`, a pure function core can replay;
the tariff's shape and checks are in `tariff.py`, risk checks in `risk.py`, and the
JSON and CSV formats a tenant uploads its own tariff in are described in `upload.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
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

from .rating import rate
from .tariff import CODE, DEFAULT_TARIFF
from .upload import read_upload

VOLUNTARY_DEDUCTIBLES = ("0", "2500", "5000", "7500", "15000")

MOTOR_PRIVATE_CAR = ProductLine(
    code=CODE,
    name="Motor private car",
    risk_fields=(
        RiskField("vehicle_value", "Vehicle list price", "money"),
        RiskField("vehicle_age_months", "Vehicle age (months)", "integer"),
        RiskField("engine_cc", "Engine capacity (cc)", "integer"),
        RiskField("zone", "Zone", "choice", choices=("A", "B")),
        RiskField("claim_free_years", "Claim-free years", "integer"),
        RiskField(
            "voluntary_deductible", "Voluntary deductible", "choice", choices=VOLUNTARY_DEDUCTIBLES
        ),
        RiskField(
            "agreed_value",
            "Agreed value",
            "money",
            required=False,
            help="Required when the vehicle is older than 60 months.",
        ),
    ),
    coverages=(
        Coverage(
            "own_damage",
            "Own damage",
            limit_basis="insured declared value (IDV)",
            deductibles=tuple(D(d) for d in VOLUNTARY_DEDUCTIBLES),
        ),
        Coverage("third_party", "Third-party liability"),
    ),
    default_rate_table=DEFAULT_TARIFF,
    lapse=LapseRules(
        grace_days={"annual": 30, "half_yearly": 30, "quarterly": 30, "monthly": 15},
        # A lapsed motor policy is re-quoted, never revived.
        revival_years=None,
    ),
)


@hookimpl
def powerbuyer_product_lines() -> list[ProductLine]:
    return [MOTOR_PRIVATE_CAR]


# No `start_date`: nothing in the tariff depends on the date, and the caller has already
# chosen the table in force on it.
@hookimpl
def powerbuyer_compute_premium(
    product_line: str, risk: Mapping[str, Any], rate_table: RateTable
) -> Premium | None:
    if product_line != CODE:
        return None
    return rate(risk, rate_table)


@hookimpl
def powerbuyer_parse_rate_table(
    product_line: str, filename: str, content: bytes
) -> RateTable | None:
    if product_line != CODE:
        return None
    return read_upload(filename, content)
