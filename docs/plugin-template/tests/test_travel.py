"""The travel line tested against a real Power Buyer (the `powerbuyer_*` fixtures)."""

from decimal import Decimal

from powerbuyer_travel.rating import DEFAULT_TABLE, rate

from core.hookspecs import Refusal


def test_rating_by_hand() -> None:
    # 10 days x 2.50 (worldwide) x 2.0 (age 70) = 50.00
    premium = rate(
        {"destination": "worldwide", "trip_days": 10, "traveller_age": 70}, DEFAULT_TABLE
    )
    assert premium.premium == Decimal("50.00")
    # 3 days x 1.20 x 1.0 = 3.60, below the minimum of 15.00
    premium = rate({"destination": "europe", "trip_days": 3, "traveller_age": 30}, DEFAULT_TABLE)
    assert premium.premium == Decimal("15.00")


def test_every_bad_field_is_named() -> None:
    try:
        rate({"destination": "mars", "trip_days": 0}, DEFAULT_TABLE)
    except Refusal as refused:
        assert set(refused.errors) == {"destination", "trip_days", "traveller_age"}
    else:
        raise AssertionError("a bad trip was rated")


def test_quote_through_the_api(powerbuyer_quote) -> None:
    quote = powerbuyer_quote(
        "travel_single_trip", {"destination": "europe", "trip_days": 14, "traveller_age": 40}
    )
    # 14 x 1.20 x 1.0 = 16.80
    assert quote["premium"] == "16.80"
    assert quote["currency"] == "EUR"
    assert [step["name"] for step in quote["trace"]] == ["daily_rate", "age_factor", "premium"]


def test_bad_risk_is_a_422_naming_the_field(powerbuyer_quote) -> None:
    problem = powerbuyer_quote(
        "travel_single_trip",
        {"destination": "europe", "trip_days": 400, "traveller_age": 40},
        expect=422,
    )
    assert "trip_days" in str(problem)


def test_another_tenant_cannot_use_it(powerbuyer_api, powerbuyer_other_tenant) -> None:
    """The other tenant did not enable the plugin: the line is not among its products
    and a quote for it is refused, naming the product."""
    admin = powerbuyer_api.admin_of(powerbuyer_other_tenant)
    products = admin.get("/api/v1/products").json
    assert "travel_single_trip" not in str(products)
    answer = admin.post(
        "/api/v1/quotes",
        json={
            "product": "travel_single_trip",
            "customer_id": 1,
            "start_date": "2030-01-01",
            "risk": {"destination": "europe", "trip_days": 14, "traveller_age": 40},
        },
    )
    assert answer.status_code in (404, 422), answer.json
