"""An example Power Buyer plugin: a product line, a fraud rule, a screen and a
start-up hook. Its fraud rule raises when the claim asks it to, so the test suite can
watch the manager isolate a failing plugin."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from flask import Blueprint, Flask

from core.hookspecs import (
    Coverage,
    FraudFlag,
    FraudRule,
    LapseRules,
    ProductLine,
    RateTable,
    RiskField,
    hookimpl,
)
from core.security.authz import public

PET = ProductLine(
    code="example_pet",
    name="Pet (example)",
    risk_fields=(RiskField("species", "Species", "choice", choices=("cat", "dog")),),
    coverages=(Coverage("vet_fees", "Vet fees", limits=(Decimal("2000"), Decimal("5000"))),),
    default_rate_table=RateTable("example_pet", "example-1", {"base": Decimal("12.50")}),
    lapse=LapseRules(grace_days={"annual": 30, "monthly": 15}, revival_years=None),
)

screens = Blueprint("pb_example", __name__, url_prefix="/example")


@screens.get("/")
@public
def index() -> str:
    return "example screen"


@hookimpl
def powerbuyer_product_lines() -> list[ProductLine]:
    return [PET]


@hookimpl
def powerbuyer_fraud_rules() -> list[FraudRule]:
    return [FraudRule("example_round_amount", "Round claimed amount", default_weight=10)]


@hookimpl
def powerbuyer_fraud_flags(claim: Mapping[str, Any]) -> list[FraudFlag]:
    if claim.get("explode"):
        raise RuntimeError("example plugin asked to explode")
    if Decimal(claim["amount"]) % 1000 == 0:
        return [FraudFlag("example_round_amount", f"{claim['amount']} is a round amount")]
    return []


@hookimpl
def powerbuyer_blueprints() -> list[Blueprint]:
    return [screens]


@hookimpl
def powerbuyer_startup(app: Flask) -> None:
    app.config.setdefault("PB_EXAMPLE_STARTED", True)
