"""The plugin's hooks: what Power Buyer calls. Only `hookimpl` functions named after
the hooks of core/hookspecs.py; each answers None for product lines not its own."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from core.hookspecs import (
    Coverage,
    LapseRules,
    Premium,
    ProductLine,
    RateTable,
    Refusal,
    RiskField,
    hookimpl,
)
from powerbuyer_travel.rating import CODE, DEFAULT_TABLE, MAX_TRIP_DAYS, rate

TRAVEL = ProductLine(
    code=CODE,
    name="Travel, single trip",
    risk_fields=(
        RiskField("destination", "Destination", "choice", choices=("europe", "worldwide")),
        RiskField("trip_days", f"Trip length (days, 1-{MAX_TRIP_DAYS})", "integer"),
        RiskField("traveller_age", "Traveller's age", "integer"),
    ),
    coverages=(
        Coverage("medical", "Emergency medical expenses", limits=(Decimal("100000"),)),
        Coverage("baggage", "Baggage", limits=(Decimal("1500"),), optional=True),
    ),
    default_rate_table=DEFAULT_TABLE,
    # A single trip is paid up front and never lapses or revives.
    lapse=LapseRules(
        grace_days={"annual": 0, "half_yearly": 0, "quarterly": 0, "monthly": 0},
        revival_years=None,
    ),
)


@hookimpl
def powerbuyer_product_lines() -> list[ProductLine]:
    return [TRAVEL]


@hookimpl
def powerbuyer_compute_premium(
    product_line: str, risk: Mapping[str, Any], rate_table: RateTable, start_date: date
) -> Premium | None:
    if product_line != CODE:
        return None
    return rate(risk, rate_table)


@hookimpl
def powerbuyer_parse_rate_table(
    product_line: str, filename: str, content: bytes
) -> RateTable | None:
    """A JSON table shaped like DEFAULT_TABLE.data, with a "version"."""
    if product_line != CODE:
        return None
    try:
        data = json.loads(content, parse_float=Decimal)
    except ValueError:
        raise Refusal("the file is not JSON", field="file") from None
    if not isinstance(data, dict) or not isinstance(data.get("version"), str):
        raise Refusal('a JSON object with a "version" is expected', field="version")
    version = data.pop("version")
    rates = data.get("daily_rate")
    if not isinstance(rates, dict) or not rates:
        raise Refusal("must map regions to daily rates", field="daily_rate")
    bad = {
        f"daily_rate.{region}": "must be a positive amount"
        for region, value in rates.items()
        if not isinstance(value, Decimal | int) or Decimal(value) <= 0
    }
    if bad:
        raise Refusal("bad daily rates", errors=bad)
    merged = {**DEFAULT_TABLE.data, **data}
    return RateTable(CODE, version, merged, currency=DEFAULT_TABLE.currency)
