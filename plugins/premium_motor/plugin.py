"""Motor private car: the product line and its default tariff (PRODUCT.md, India Motor
Tariff structure).

A declaration only: the rating that applies this tariff comes with the products work,
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

CODE = "motor_private_car"
VOLUNTARY_DEDUCTIBLES = ("0", "2500", "5000", "7500", "15000")


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
        "rounding": "half-up to the cent at every step",
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
