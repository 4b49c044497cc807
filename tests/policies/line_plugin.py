"""A product-line plugin for the policy tests: figures simple enough to compute by hand.

Line `pbtest_home` (and, with the same rating under other codes, `pbtest_book` for
the bulk re-rating test and `pbtest_tariff` for tests that load a new tariff, so that
they change no other test's figures): premium = base - no-claim discount, where

    base     = sum_insured x rate_percent / 100          (rounded half-up to the cent)
    discount = base x ncd_percent[claim_free_years] / 100 (rounded half-up; the last
               entry of the table for more claim-free years)

The default table rates 1.5% with discounts 0, 10, 20, 30%. A rate table upload is
JSON: {"version": ..., "rate_percent": "2.0", "ncd_percent": ["0", "10", ...]}.
`term_years` (optional) makes a multi-year term, as term life does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from core.hookspecs import (
    Coverage,
    LapseRules,
    Premium,
    ProductLine,
    RateTable,
    RatingStep,
    Refusal,
    RiskField,
    hookimpl,
)
from core.money import round_cents

PLUGIN = "pbtest_policy_lines"
LINE, BOOK_LINE, TARIFF_LINE = "pbtest_home", "pbtest_book", "pbtest_tariff"
LINES = (LINE, BOOK_LINE, TARIFF_LINE)
CURRENCY = "EUR"


def table(line: str, version: str, rate: str, ncd: Sequence[str]) -> RateTable:
    return RateTable(
        line,
        version,
        {"rate_percent": Decimal(rate), "ncd_percent": [Decimal(p) for p in ncd]},
        currency=CURRENCY,
    )


DEFAULT_NCD = ("0", "10", "20", "30")


def _line(code: str, name: str) -> ProductLine:
    return ProductLine(
        code=code,
        name=name,
        risk_fields=(
            RiskField("sum_insured", "Sum insured", "money"),
            RiskField("claim_free_years", "Claim-free years", "integer", required=False),
            RiskField("term_years", "Term in years", "integer", required=False),
        ),
        coverages=(Coverage("buildings", "Buildings", limit_basis="sum insured"),),
        default_rate_table=table(code, f"{code}-default", "1.5", DEFAULT_NCD),
        lapse=LapseRules(
            grace_days={"annual": 30, "half_yearly": 30, "quarterly": 30, "monthly": 15},
            revival_years=2,
        ),
    )


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool | float):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def rate(risk: Mapping[str, Any], rate_table: RateTable) -> Premium:
    errors = {}
    sum_insured = _decimal(risk.get("sum_insured"))
    if sum_insured is None or not sum_insured.is_finite() or sum_insured <= 0:
        errors["sum_insured"] = "Must be a positive amount."
    given = risk.get("claim_free_years", 0)
    years = given if isinstance(given, int) and not isinstance(given, bool) else None
    if isinstance(given, str) and given.isdigit():
        years = int(given)
    if years is None or years < 0:
        errors["claim_free_years"] = "Must be a whole number, 0 or more."
    if errors:
        raise Refusal("The risk cannot be rated.", errors=errors)
    assert sum_insured is not None and years is not None
    data = rate_table.data
    percent = Decimal(data["rate_percent"])
    discounts = [Decimal(p) for p in data["ncd_percent"]]
    ncd = discounts[min(years, len(discounts) - 1)]
    base = round_cents(sum_insured * percent / 100)
    discount = round_cents(base * ncd / 100)
    version = rate_table.version
    steps = (
        RatingStep(
            "sum_insured",
            {"sum_insured": sum_insured},
            sum_insured,
            version,
            "Sum insured",
            f"{sum_insured}",
            0,
        ),
        RatingStep(
            "base", {"rate_percent": percent}, base, version, "Base premium", f"{percent}%", 1
        ),
        RatingStep(
            "no_claim_discount",
            {"claim_free_years": years, "percent": ncd},
            discount,
            version,
            "No-claim discount",
            f"{ncd}%",
            -1,
        ),
    )
    return Premium(base - discount, rate_table.currency or CURRENCY, steps)


class LinePlugin:
    @hookimpl
    def powerbuyer_product_lines(self) -> Sequence[ProductLine]:
        return [_line(code, f"Test {code[7:]}") for code in LINES]

    @hookimpl
    def powerbuyer_compute_premium(
        self,
        product_line: str,
        risk: Mapping[str, Any],
        rate_table: RateTable,
        start_date: date,
    ) -> Premium | None:
        if product_line not in LINES:
            return None
        return rate(risk, rate_table)

    @hookimpl
    def powerbuyer_parse_rate_table(
        self, product_line: str, filename: str, content: bytes
    ) -> RateTable | None:
        if product_line not in LINES:
            return None
        data = json.loads(content)
        return table(product_line, data["version"], data["rate_percent"], data["ncd_percent"])
