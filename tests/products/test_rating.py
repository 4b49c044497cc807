"""Rating: the product version in force on the start date, stored tables read back
exactly, refusals naming each field, replay on the exact table version.

Premiums here are worked by hand from PRODUCT.md's tariff with the reference risk
(IDV 560,000.00; deductible 5,000; 3 claim-free years; 1001-1500cc, so third party
3,416.00) and the own-damage rate of the table in force:
- 3.283% (default): OD 18,384.80, discount 1,500.00, bonus 35% of 16,884.80 =
  5,909.68, premium 14,391.12;
- 4.000%: OD 22,400.00, discount 1,500.00, bonus 35% of 20,900.00 = 7,315.00,
  premium 17,001.00;
- 3.500%: OD 19,600.00, discount 1,500.00, bonus 35% of 18,100.00 = 6,335.00,
  premium 15,181.00.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from flask import Flask

from core.products import operations, rating
from core.products.rules import RatingRefused
from core.tenancy import Tenant
from tests.conftest import rolled_back_session
from tests.products.fixtures import LIFE, MOTOR, REFERENCE_LIFE, REFERENCE_MOTOR, Staff, as_user
from tests.products.motor_tables import motor_csv

TODAY = date.today()


def test_the_reference_risks_rate_on_the_default_tables(
    app: Flask, quoting: Tenant, products_on: dict[str, int]
) -> None:
    with rolled_back_session(app, quoting):
        motor = rating.rate(MOTOR, REFERENCE_MOTOR, TODAY)
        life = rating.rate(LIFE, REFERENCE_LIFE, TODAY)
    assert (motor.premium, motor.currency, motor.rate_table_version) == (
        Decimal("14391.12"),
        "INR",
        "default-1",
    )
    assert motor.product.id == products_on[MOTOR] and motor.version.rate_table_id is None
    # The trace is plain JSON with Decimals as strings, the steps the plugin's own.
    steps = {step["name"]: step for step in motor.trace}
    assert steps["own_damage"]["result"] == "18384.80"
    assert steps["no_claim_bonus"]["result"] == "5909.68"
    assert steps["no_claim_bonus"]["sign"] == -1
    assert [s.name for s in motor.steps] == [s["name"] for s in motor.trace]
    assert life.premium == Decimal("133.32")


def test_the_version_in_force_on_the_start_date_is_used(
    app: Flask, quoting: Tenant, q_admin: Staff, products_on: dict[str, int]
) -> None:
    first, second = TODAY + timedelta(days=100), TODAY + timedelta(days=200)
    with rolled_back_session(app, quoting):
        user = as_user(q_admin)
        four = operations.upload_rate_table(MOTOR, "four.csv", motor_csv("4.000"), user=user)
        three_half = operations.upload_rate_table(MOTOR, "35.csv", motor_csv("3.500"), user=user)
        operations.add_product_version(products_on[MOTOR], first, four.id, "4%", user=user)
        operations.add_product_version(
            products_on[MOTOR], second.isoformat(), three_half.id, "3.5%", user=user
        )

        def premium(on: date) -> tuple[Decimal, str]:
            rated = rating.rate(MOTOR, REFERENCE_MOTOR, on)
            return rated.premium, rated.rate_table_version

        assert premium(first - timedelta(days=1)) == (Decimal("14391.12"), "default-1")
        assert premium(first) == (Decimal("17001.00"), four.version)
        assert premium(second - timedelta(days=1)) == (Decimal("17001.00"), four.version)
        assert premium(second) == (Decimal("15181.00"), three_half.version)
        assert premium(second + timedelta(days=30)) == (Decimal("15181.00"), three_half.version)
        # Each step names the table it used.
        trace = rating.rate(MOTOR, REFERENCE_MOTOR, second).trace
        assert {step["rate_table_version"] for step in trace} == {three_half.version}


def test_replay_rates_on_the_table_version_named_even_after_a_new_version(
    app: Flask, quoting: Tenant, q_admin: Staff, products_on: dict[str, int]
) -> None:
    start = TODAY + timedelta(days=150)
    with rolled_back_session(app, quoting):
        user = as_user(q_admin)
        four = operations.upload_rate_table(MOTOR, "four.csv", motor_csv("4.000"), user=user)
        three_half = operations.upload_rate_table(MOTOR, "35.csv", motor_csv("3.500"), user=user)
        version = operations.add_product_version(
            products_on[MOTOR], start - timedelta(days=10), four.id, user=user
        )
        stored = rating.rate(MOTOR, REFERENCE_MOTOR, start)
        assert stored.premium == Decimal("17001.00")
        # A later tariff now covers the start date: rating again changes, replay does not.
        operations.add_product_version(
            products_on[MOTOR], start - timedelta(days=2), three_half.id, user=user
        )
        assert rating.rate(MOTOR, REFERENCE_MOTOR, start).premium == Decimal("15181.00")
        source = {
            "line_code": MOTOR,
            "risk": stored.risk,
            "start_date": start.isoformat(),
            "rate_table_version": four.version,
            "product_version_id": version.id,
        }
        replayed = rating.replay(source)
        assert replayed.premium == Decimal("17001.00")
        assert replayed.trace == stored.trace
        assert rating.differences(stored.premium, stored.trace, replayed) == []
        # The comparison can fail: a stored premium one cent off is reported.
        off = rating.differences(Decimal("17001.01"), stored.trace, replayed)
        assert off == ["premium 17001.01 -> 17001.00"]
        # A trace alone names its table: the same replay without the version given.
        from_trace = {**source, "rate_table_version": None, "trace": stored.trace}
        assert rating.replay(from_trace).premium == Decimal("17001.00")
        # A table this tenant never had cannot be replayed.
        with pytest.raises(RatingRefused) as refused:
            rating.replay({**source, "rate_table_version": "nobody-1"})
        assert list(refused.value.errors) == ["rate_table_version"]


def test_unknown_disabled_and_not_enabled_products_are_refused(
    app: Flask, quoting: Tenant, beta: Tenant, q_admin: Staff, products_on: dict[str, int]
) -> None:
    with rolled_back_session(app, quoting):
        with pytest.raises(RatingRefused) as unknown:
            rating.rate("travel", REFERENCE_MOTOR, TODAY)
        assert unknown.value.errors == {"product": ["No product 'travel' is sold here."]}
        operations.disable_product(products_on[LIFE], user=as_user(q_admin))
        with pytest.raises(RatingRefused) as disabled:
            rating.rate(LIFE, REFERENCE_LIFE, TODAY)
        assert disabled.value.errors == {"product": ["Term life is not offered for new quotes."]}
        # A disabled product's quotes still replay.
        assert rating.replay(
            {
                "line_code": LIFE,
                "risk": REFERENCE_LIFE,
                "start_date": TODAY,
                "rate_table_version": "default-1",
            }
        ).premium == Decimal("133.32")
    # Beta enabled neither plugin: the line is unknown there.
    with rolled_back_session(app, beta):
        with pytest.raises(RatingRefused) as elsewhere:
            rating.rate(MOTOR, REFERENCE_MOTOR, TODAY)
        assert list(elsewhere.value.errors) == ["product"]


def test_refusals_name_every_field_at_once(
    app: Flask, quoting: Tenant, products_on: dict[str, int]
) -> None:
    with rolled_back_session(app, quoting):
        with pytest.raises(RatingRefused) as both:
            rating.rate("travel", ["not", "a", "risk"], TODAY)
        assert set(both.value.errors) == {"product", "risk"}
        bad = {
            **REFERENCE_MOTOR,
            "zone": "C",
            "vehicle_value": "-5",
            "voluntary_deductible": "3000",
            "vehicle_age_months": 72,
        }
        with pytest.raises(RatingRefused) as risk:
            rating.rate(MOTOR, bad, TODAY)
        assert set(risk.value.errors) == {
            "risk.zone",
            "risk.vehicle_value",
            "risk.voluntary_deductible",
            "risk.agreed_value",
        }
        with pytest.raises(RatingRefused) as early:
            rating.rate(MOTOR, REFERENCE_MOTOR, date(1999, 12, 31))
        assert "first version starts on 2000-01-01" in early.value.errors["start_date"][0]


def test_the_risk_is_cleaned_before_rating_and_stored_as_rated(
    app: Flask, quoting: Tenant, products_on: dict[str, int]
) -> None:
    """A form sends every field as text, blank ones empty: blanks are not given, text
    is trimmed, Decimals become strings, and the result rates the same."""
    sent = {
        "vehicle_value": Decimal("800000.00"),
        "vehicle_age_months": " 36 ",
        "engine_cc": "1197",
        "zone": "A",
        "claim_free_years": "3",
        "voluntary_deductible": "5000",
        "agreed_value": "",
    }
    with rolled_back_session(app, quoting):
        rated = rating.rate(MOTOR, sent, TODAY)
    assert rated.risk == {
        "vehicle_value": "800000.00",
        "vehicle_age_months": "36",
        "engine_cc": "1197",
        "zone": "A",
        "claim_free_years": "3",
        "voluntary_deductible": "5000",
    }
    assert rated.premium == Decimal("14391.12")
