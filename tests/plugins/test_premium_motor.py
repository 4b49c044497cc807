"""Motor private car rating against PRODUCT.md "Motor private car — default tariff":
the reference quote, cases worked out by hand across zones, engine bands, age bands,
deductibles and no-claim levels, every refusal, replay, tariff uploads, and the hooks
through the plugin manager.

Expected figures are worked out in the comments (half-up to the cent at every step),
never taken from the code under test.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from decimal import Decimal as D
from typing import Any

import pytest

from core.hookspecs import Premium, RateTable, RatingStep, Refusal
from core.plugins import PluginHost
from core.tenancy import Tenant
from plugins.premium_motor.plugin import DEFAULT_TARIFF
from plugins.premium_motor.rating import rate
from plugins.premium_motor.tariff import check_tariff
from plugins.premium_motor.upload import CSV_HEADER, read_upload, version_of

STEPS = (
    "idv",
    "own_damage",
    "voluntary_deductible_discount",
    "no_claim_bonus",
    "third_party",
    "premium",
)
REFERENCE = {
    "vehicle_value": "800000",
    "vehicle_age_months": 36,
    "engine_cc": 1197,
    "zone": "A",
    "claim_free_years": 3,
    "voluntary_deductible": "5000",
}


def risk(**changes: Any) -> dict[str, Any]:
    return {**REFERENCE, **changes}


def results(premium: Premium) -> tuple[str, ...]:
    return tuple(str(step.result) for step in premium.trace)


def refused(risk: dict[str, Any], table: RateTable = DEFAULT_TARIFF) -> dict[str, str]:
    with pytest.raises(Refusal) as caught:
        rate(risk, table)
    return caught.value.errors


# --- the reference --------------------------------------------------------------------


def test_reference_quote_step_by_step():
    premium = rate(REFERENCE, DEFAULT_TARIFF)

    assert (premium.premium, premium.currency) == (D("14391.12"), "INR")
    assert str(premium.premium) == "14391.12"
    idv, od, discount, bonus, tp, total = premium.trace
    assert [s.name for s in premium.trace] == list(STEPS)
    assert {s.rate_table_version for s in premium.trace} == {"default-1"}

    # IDV 800000 x (1 - 30%) = 560000.00 (36 months: <=36 band)
    assert (idv.result, idv.sign, idv.label) == (D("560000.00"), 0, "Insured declared value")
    assert idv.factor == "30% depreciation, 36 months"
    assert idv.inputs == {
        "vehicle_value": D("800000"),
        "vehicle_age_months": 36,
        "depreciation": D("0.30"),
    }
    # OD 560000.00 x 3.283% = 18384.80 (zone A, 1001-1500cc, <=60 months)
    assert (od.result, od.sign, od.label) == (D("18384.80"), 1, "Own damage")
    assert od.factor == "3.283% (zone A, 1001-1500cc, 36 months)"
    assert od.inputs == {
        "idv": D("560000.00"),
        "rate_percent": D("3.283"),
        "zone": "A",
        "engine_cc": 1197,
        "vehicle_age_months": 36,
    }
    # Discount 18384.80 x 25% = 4596.20, capped at 1500.00
    assert (discount.result, discount.sign) == (D("1500.00"), -1)
    assert discount.label == "Voluntary deductible discount"
    assert discount.factor == "25% up to 1,500 (deductible 5,000)"
    assert discount.inputs == {
        "own_damage": D("18384.80"),
        "voluntary_deductible": D("5000"),
        "rate": D("0.25"),
        "cap": D("1500"),
    }
    # Bonus (18384.80 - 1500.00) x 35% = 16884.80 x 0.35 = 5909.68
    assert (bonus.result, bonus.sign, bonus.label, bonus.factor) == (
        D("5909.68"),
        -1,
        "No-claim bonus",
        "35%",
    )
    assert bonus.inputs == {
        "own_damage_less_discount": D("16884.80"),
        "claim_free_years": 3,
        "rate": D("0.35"),
    }
    # Third party 1001-1500cc: 3416.00
    assert (tp.result, tp.sign, tp.label, tp.factor) == (
        D("3416.00"),
        1,
        "Third party",
        "1001-1500cc",
    )
    # Premium 18384.80 - 1500.00 - 5909.68 + 3416.00 = 14391.12
    assert (total.result, total.sign, total.label) == (D("14391.12"), 0, "Premium")
    assert total.inputs == {
        "own_damage": D("18384.80"),
        "voluntary_deductible_discount": D("1500.00"),
        "no_claim_bonus": D("5909.68"),
        "third_party": D("3416.00"),
    }


# --- cases worked out by hand ---------------------------------------------------------
# Each: the risk, then IDV, OD, discount, bonus, third party, premium.

CASES = [
    pytest.param(
        # A, 3 months (<=6: 5%), 998cc (<=1000), no deductible, no claim-free year.
        # IDV 450000 x 0.95 = 427500.00; OD 427500 x 3.127% = 13367.925 -> 13367.93
        # (half-up; banker's would give .92); discount 0; bonus 0% = 0.00; TP 2094.00;
        # premium 13367.93 + 2094.00 = 15461.93
        risk(
            vehicle_value="450000",
            vehicle_age_months=3,
            engine_cc=998,
            claim_free_years=0,
            voluntary_deductible="0",
        ),
        ("427500.00", "13367.93", "0.00", "0.00", "2094.00", "15461.93"),
        id="A-3m-998cc-no-deductible-ncb0-half-up-od",
    ),
    pytest.param(
        # B, 6 months (<=6: 5%), 1000cc (<=1000 edge), 1 year, deductible 2500 capped.
        # IDV 300000 x 0.95 = 285000.00; OD 285000 x 3.039% = 8661.15;
        # discount 8661.15 x 20% = 1732.23 -> cap 750.00; bonus (8661.15 - 750) = 7911.15
        # x 20% = 1582.23; TP 2094.00; premium 8661.15 - 750 - 1582.23 + 2094 = 8422.92
        risk(
            vehicle_value="300000",
            vehicle_age_months=6,
            engine_cc=1000,
            zone="B",
            claim_free_years=1,
            voluntary_deductible="2500",
        ),
        ("285000.00", "8661.15", "750.00", "1582.23", "2094.00", "8422.92"),
        id="B-6m-1000cc-ded2500-capped-ncb1",
    ),
    pytest.param(
        # A, 7 months (<=12: 15%), 1001cc (1001-1500 edge), 2 years, 2500 under its cap.
        # IDV 120000 x 0.85 = 102000.00; OD 102000 x 3.283% = 3348.66;
        # discount 3348.66 x 20% = 669.732 -> 669.73 (< 750); bonus (3348.66 - 669.73) =
        # 2678.93 x 25% = 669.7325 -> 669.73; TP 3416.00;
        # premium 3348.66 - 669.73 - 669.73 + 3416 = 5425.20
        risk(
            vehicle_value="120000",
            vehicle_age_months=7,
            engine_cc=1001,
            claim_free_years=2,
            voluntary_deductible="2500",
        ),
        ("102000.00", "3348.66", "669.73", "669.73", "3416.00", "5425.20"),
        id="A-7m-1001cc-ded2500-uncapped-ncb2",
    ),
    pytest.param(
        # B, 12 months (<=12: 15%), 1500cc (1001-1500 edge), 4 years, 7500 capped.
        # IDV 1000000 x 0.85 = 850000.00; OD 850000 x 3.191% = 27123.50;
        # discount 27123.50 x 30% = 8137.05 -> cap 2000.00; bonus 25123.50 x 45% =
        # 11305.575 -> 11305.58 (half-up); TP 3416.00;
        # premium 27123.50 - 2000 - 11305.58 + 3416 = 17233.92
        risk(
            vehicle_value=1000000,
            vehicle_age_months=12,
            engine_cc=1500,
            zone="B",
            claim_free_years=4,
            voluntary_deductible=7500,
        ),
        ("850000.00", "27123.50", "2000.00", "11305.58", "3416.00", "17233.92"),
        id="B-12m-1500cc-ded7500-capped-ncb4-half-up-bonus",
    ),
    pytest.param(
        # A, 24 months (<=24: 20%), 1501cc (>1500 edge), 5 years, 7500 under its cap.
        # IDV 200000 x 0.80 = 160000.00; OD 160000 x 3.440% = 5504.00;
        # discount 5504 x 30% = 1651.20 (< 2000); bonus 3852.80 x 50% = 1926.40;
        # TP 7897.00; premium 5504 - 1651.20 - 1926.40 + 7897 = 9823.40
        risk(
            vehicle_value="200000",
            vehicle_age_months=24,
            engine_cc=1501,
            claim_free_years=5,
            voluntary_deductible="7500",
        ),
        ("160000.00", "5504.00", "1651.20", "1926.40", "7897.00", "9823.40"),
        id="A-24m-1501cc-ded7500-uncapped-ncb5",
    ),
    pytest.param(
        # B, 48 months (<=48: 40%), 2498cc, 7 years (5 or more: 50%), 15000 capped,
        # a value with cents. IDV 1250000.50 x 0.60 = 750000.30;
        # OD 750000.30 x 3.343% = 25072.510029 -> 25072.51; discount x 35% = 8775.3785
        # -> cap 2500.00; bonus 22572.51 x 50% = 11286.255 -> 11286.26 (half-up);
        # TP 7897.00; premium 25072.51 - 2500 - 11286.26 + 7897 = 19183.25
        risk(
            vehicle_value="1250000.50",
            vehicle_age_months=48,
            engine_cc=2498,
            zone="B",
            claim_free_years=7,
            voluntary_deductible="15000",
        ),
        ("750000.30", "25072.51", "2500.00", "11286.26", "7897.00", "19183.25"),
        id="B-48m-2498cc-ded15000-capped-ncb7",
    ),
    pytest.param(
        # A, 60 months (<=60: 50%, the last depreciated age), 1600cc, 3 years, 15000
        # under its cap. IDV 400000 x 0.50 = 200000.00; OD 200000 x 3.440% = 6880.00;
        # discount 6880 x 35% = 2408.00 (< 2500); bonus 4472.00 x 35% = 1565.20;
        # TP 7897.00; premium 6880 - 2408 - 1565.20 + 7897 = 10803.80
        risk(
            vehicle_value="400000",
            vehicle_age_months=60,
            engine_cc=1600,
            voluntary_deductible="15000",
        ),
        ("200000.00", "6880.00", "2408.00", "1565.20", "7897.00", "10803.80"),
        id="A-60m-1600cc-ded15000-uncapped-ncb3",
    ),
    pytest.param(
        # A, 61 months: agreed value, OD band 61-120; 1197cc, 5 years, 5000 under its
        # cap. IDV = agreed 150000.00; OD 150000 x 3.447% = 5170.50; discount 5170.50 x
        # 25% = 1292.625 -> 1292.63 (half-up, < 1500); bonus 3877.87 x 50% = 1938.935
        # -> 1938.94 (half-up); TP 3416.00; premium 5170.50 - 1292.63 - 1938.94 + 3416
        # = 5354.93
        risk(
            vehicle_value="700000",
            vehicle_age_months=61,
            agreed_value="150000",
            claim_free_years=5,
        ),
        ("150000.00", "5170.50", "1292.63", "1938.94", "3416.00", "5354.93"),
        id="A-61m-agreed-1197cc-ded5000-uncapped-ncb5-half-up-discount",
    ),
    pytest.param(
        # B, 120 months (61-120 edge), agreed 250000, 2000cc (>1500), 0 years, 5000
        # capped. OD 250000 x 3.510% = 8775.00; discount x 25% = 2193.75 -> cap 1500.00;
        # bonus 0% = 0.00; TP 7897.00; premium 8775 - 1500 + 7897 = 15172.00
        risk(
            vehicle_value="900000",
            vehicle_age_months=120,
            agreed_value="250000",
            engine_cc=2000,
            zone="B",
            claim_free_years=0,
        ),
        ("250000.00", "8775.00", "1500.00", "0.00", "7897.00", "15172.00"),
        id="B-120m-agreed-2000cc-ded5000-capped-ncb0",
    ),
    pytest.param(
        # A, 121 months (>120), agreed 90000.55, 900cc (<=1000), 1 year, no deductible.
        # OD 90000.55 x 3.362% = 3025.818491 -> 3025.82; discount 0; bonus 3025.82 x 20%
        # = 605.164 -> 605.16; TP 2094.00; premium 3025.82 - 605.16 + 2094 = 4514.66
        risk(
            vehicle_value="500000",
            vehicle_age_months=121,
            agreed_value="90000.55",
            engine_cc=900,
            claim_free_years=1,
            voluntary_deductible=0,
        ),
        ("90000.55", "3025.82", "0.00", "605.16", "2094.00", "4514.66"),
        id="A-121m-agreed-900cc-no-deductible-ncb1",
    ),
    pytest.param(
        # B, 180 months (>120), agreed 120000, 1300cc (1001-1500), 2 years, 2500 capped.
        # OD 120000 x 3.430% = 4116.00; discount x 20% = 823.20 -> cap 750.00; bonus
        # 3366.00 x 25% = 841.50; TP 3416.00; premium 4116 - 750 - 841.50 + 3416 = 5940.50
        risk(
            vehicle_value="600000",
            vehicle_age_months=180,
            agreed_value="120000",
            engine_cc=1300,
            zone="B",
            claim_free_years=2,
            voluntary_deductible="2500",
        ),
        ("120000.00", "4116.00", "750.00", "841.50", "3416.00", "5940.50"),
        id="B-180m-agreed-1300cc-ded2500-capped-ncb2",
    ),
]


@pytest.mark.parametrize(("risk", "expected"), CASES)
def test_hand_worked_cases(risk: dict[str, Any], expected: tuple[str, ...]):
    premium = rate(risk, DEFAULT_TARIFF)

    assert results(premium) == expected
    assert premium.premium == D(expected[-1])
    # The signs say how each step enters the premium.
    assert sum(s.sign * s.result for s in premium.trace) == premium.premium
    _each_step_follows_from_its_inputs(premium.trace)


def _each_step_follows_from_its_inputs(trace: tuple[RatingStep, ...]) -> None:
    """Replaying a step from its own inputs gives its result (a stored trace is checkable
    without the tariff). Half-up to the cent, as PRODUCT.md says."""
    from core.money import round_cents

    steps = {s.name: s for s in trace}
    idv = steps["idv"].inputs
    expected_idv = (
        round_cents(idv["agreed_value"])
        if "agreed_value" in idv
        else round_cents(idv["vehicle_value"] * (1 - idv["depreciation"]))
    )
    assert steps["idv"].result == expected_idv
    od = steps["own_damage"].inputs
    assert od["idv"] == expected_idv
    assert steps["own_damage"].result == round_cents(od["idv"] * od["rate_percent"] / 100)
    vd = steps["voluntary_deductible_discount"].inputs
    assert steps["voluntary_deductible_discount"].result == (
        min(round_cents(vd["own_damage"] * vd["rate"]), vd["cap"]) if "rate" in vd else 0
    )
    ncb = steps["no_claim_bonus"].inputs
    assert ncb["own_damage_less_discount"] == (
        steps["own_damage"].result - steps["voluntary_deductible_discount"].result
    )
    assert steps["no_claim_bonus"].result == round_cents(
        ncb["own_damage_less_discount"] * ncb["rate"]
    )
    assert steps["third_party"].result == steps["third_party"].inputs["amount"]
    total = steps["premium"].inputs
    assert steps["premium"].result == (
        total["own_damage"]
        - total["voluntary_deductible_discount"]
        - total["no_claim_bonus"]
        + total["third_party"]
    )
    for step in trace:
        for value in step.inputs.values():
            assert type(value) in (str, int, D), (step.name, value)


def test_factors_name_the_band_of_each_case():
    agreed = rate(CASES[9].values[0], DEFAULT_TARIFF).trace
    assert agreed[0].factor == "agreed value, 121 months"
    assert agreed[0].inputs == {"agreed_value": D("90000.55"), "vehicle_age_months": 121}
    assert agreed[1].factor == "3.362% (zone A, up to 1000cc, 121 months)"
    assert agreed[2].factor == "no voluntary deductible"
    assert agreed[4].factor == "up to 1000cc"
    big = rate(CASES[5].values[0], DEFAULT_TARIFF).trace
    assert big[0].factor == "40% depreciation, 48 months"
    assert big[1].factor == "3.343% (zone B, over 1500cc, 48 months)"
    assert big[2].factor == "35% up to 2,500 (deductible 15,000)"
    assert (big[3].factor, big[3].inputs["claim_free_years"]) == ("50%", 7)
    none = rate(CASES[0].values[0], DEFAULT_TARIFF).trace
    assert (none[0].factor, none[3].factor) == ("5% depreciation, 3 months", "0%")


def test_renewal_can_explain_a_factor_change_from_the_two_traces():
    # A, 36 months, 1197cc, no deductible, 3 -> 4 claim-free years.
    # IDV 444510 x 0.70 = 311157.00; OD 311157 x 3.283% = 10215.28431 -> 10215.28;
    # bonus 35% = 3575.348 -> 3575.35; 45% = 4596.876 -> 4596.88; the premium moves by
    # -(4596.88 - 3575.35) = -1021.53.
    before = rate(risk(vehicle_value="444510", voluntary_deductible="0"), DEFAULT_TARIFF)
    after = rate(
        risk(vehicle_value="444510", voluntary_deductible="0", claim_free_years=4), DEFAULT_TARIFF
    )
    changed = [
        (old, new)
        for old, new in zip(before.trace, after.trace, strict=True)
        if old.sign and (old.factor, old.result) != (new.factor, new.result)
    ]
    assert [old.name for old, _ in changed] == ["no_claim_bonus"]
    old, new = changed[0]
    effect = new.sign * (new.result - old.result)
    sign = "\N{MINUS SIGN}" if effect < 0 else "+"
    sentence = (
        f"{old.label[0].lower()}{old.label[1:]} {old.factor} → {new.factor}: {sign}{abs(effect):,}"
    )
    assert sentence == "no-claim bonus 35% → 45%: \N{MINUS SIGN}1,021.53"
    assert after.premium - before.premium == D("-1021.53")


# --- refusals -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"zone": "C"}, {"zone": "must be one of A, B"}),
        ({"zone": "a"}, {"zone": "must be one of A, B"}),
        ({"vehicle_value": "-800000"}, {"vehicle_value": "must be more than zero"}),
        ({"vehicle_value": 0}, {"vehicle_value": "must be more than zero"}),
        ({"vehicle_value": "eight lakh"}, {"vehicle_value": "is not a number"}),
        (
            {"vehicle_value": "800000.005"},
            {"vehicle_value": "must have at most two decimal places"},
        ),
        ({"vehicle_value": "1e12"}, {"vehicle_value": "must be less than 1,000,000,000,000"}),
        ({"vehicle_age_months": "36.5"}, {"vehicle_age_months": "must be a whole number"}),
        ({"vehicle_age_months": 36.0}, {"vehicle_age_months": "must be a whole number"}),
        ({"vehicle_age_months": -1}, {"vehicle_age_months": "cannot be negative"}),
        ({"engine_cc": True}, {"engine_cc": "must be a whole number"}),
        ({"engine_cc": "0"}, {"engine_cc": "must be at least 1"}),
        ({"claim_free_years": -1}, {"claim_free_years": "cannot be negative"}),
        ({"claim_free_years": "-2"}, {"claim_free_years": "cannot be negative"}),
        (
            {"voluntary_deductible": "3000"},
            {"voluntary_deductible": "must be one of 0, 2500, 5000, 7500, 15000"},
        ),
        (
            {"vehicle_age_months": 61},
            {"agreed_value": "is required for a vehicle older than 60 months"},
        ),
        (
            {"vehicle_age_months": 61, "agreed_value": ""},
            {"agreed_value": "is required for a vehicle older than 60 months"},
        ),
        (
            {"vehicle_age_months": 61, "agreed_value": "-5"},
            {"agreed_value": "must be more than zero"},
        ),
        ({"agreed_vaule": "100000"}, {"agreed_vaule": "is not a field of motor private car"}),
    ],
)
def test_each_bad_field_is_refused_by_name(changes: dict[str, Any], errors: dict[str, str]):
    assert refused(risk(**changes)) == errors


def test_a_float_amount_is_refused_and_an_integer_or_decimal_string_accepted():
    float_message = 'must be a decimal string such as "1250.00", not a float'
    assert refused(risk(vehicle_value=800000.0)) == {"vehicle_value": float_message}
    assert refused(risk(voluntary_deductible=5000.0)) == {"voluntary_deductible": float_message}
    assert refused(risk(vehicle_age_months=61, agreed_value=150000.0)) == {
        "agreed_value": float_message
    }
    for value in (800000, "800000", "800000.00", "800,000.00", " 800000 "):
        assert rate(risk(vehicle_value=value), DEFAULT_TARIFF).premium == D("14391.12"), value


def test_missing_fields_are_all_named():
    assert refused({}) == {
        name: "is required"
        for name in (
            "vehicle_value",
            "vehicle_age_months",
            "engine_cc",
            "claim_free_years",
            "zone",
            "voluntary_deductible",
        )
    }
    assert refused(risk(zone=None, engine_cc="")) == {
        "zone": "is required",
        "engine_cc": "is required",
    }


def test_one_refusal_names_every_bad_field_at_once():
    with pytest.raises(Refusal) as caught:
        rate(
            {
                "vehicle_value": "-1",
                "vehicle_age_months": 72,
                "engine_cc": 1197,
                "zone": "Z",
                "claim_free_years": -3,
                "voluntary_deductible": 3000,
            },
            DEFAULT_TARIFF,
        )
    assert caught.value.errors == {
        "vehicle_value": "must be more than zero",
        "claim_free_years": "cannot be negative",
        "zone": "must be one of A, B",
        "voluntary_deductible": "must be one of 0, 2500, 5000, 7500, 15000",
        "agreed_value": "is required for a vehicle older than 60 months",
    }
    assert caught.value.message.startswith("The risk has 5 fields to correct")
    assert caught.value.field is None  # several fields: `errors` names them


def test_agreed_value_is_ignored_up_to_60_months():
    with_agreed = rate(risk(agreed_value="1"), DEFAULT_TARIFF)
    assert with_agreed == rate(REFERENCE, DEFAULT_TARIFF)


def test_risk_that_is_not_an_object_is_refused():
    with pytest.raises(Refusal) as caught:
        rate(["zone", "A"], DEFAULT_TARIFF)  # type: ignore[arg-type]
    assert caught.value.errors == {"risk": "must be an object"}


# --- replay -----------------------------------------------------------------------------


def test_rating_again_gives_the_identical_trace():
    first = rate(REFERENCE, DEFAULT_TARIFF)
    again = rate(dict(REFERENCE), DEFAULT_TARIFF)
    assert again == first
    assert again.trace == first.trace
    # The same risk as strings (a form) and as JSON numbers (the API): one trace.
    as_strings = {name: str(value) for name, value in REFERENCE.items()}
    assert rate(as_strings, DEFAULT_TARIFF) == first


def test_a_stored_table_with_decimals_as_strings_rates_the_same():
    # How a table comes back from a JSON column: every Decimal a string.
    stored = json.loads(json.dumps(DEFAULT_TARIFF.data, default=str))
    assert stored["own_damage_rate_percent"]["A"][0]["rates"][1] == "3.283"
    table = RateTable("motor_private_car", "default-1", stored, currency="INR")
    assert rate(REFERENCE, table) == rate(REFERENCE, DEFAULT_TARIFF)


def test_a_broken_table_refuses_to_rate_and_names_its_entries():
    data = json.loads(json.dumps(DEFAULT_TARIFF.data, default=str))
    data["no_claim_bonus"][2]["rate"] = 0.35  # a float crept in
    del data["third_party_by_engine_band"]
    table = RateTable("term_life", "t-9", data, currency=None)
    with pytest.raises(Refusal) as caught:
        rate(REFERENCE, table)
    assert caught.value.errors == {
        "rate_table": "is for term_life, not motor_private_car",
        "rate_table.currency": "is required",
        "rate_table.no_claim_bonus[2].rate": (
            'must be exact (a decimal string such as "0.35"), not a float'
        ),
        "rate_table.third_party_by_engine_band": "is required",
    }


def test_the_default_tariff_passes_its_own_check_unchanged():
    assert check_tariff(DEFAULT_TARIFF.data) == DEFAULT_TARIFF.data


# --- uploaded tariffs ------------------------------------------------------------------

TENANT_JSON = b"""{
  "version": "acme-2027-01",
  "currency": "INR",
  "depreciation": [
    {"max_age_months": 6, "rate": 0.05}, {"max_age_months": 12, "rate": "0.15"},
    {"max_age_months": 24, "rate": 0.20}, {"max_age_months": 36, "rate": 0.30},
    {"max_age_months": 48, "rate": 0.40}, {"max_age_months": 60, "rate": 0.50}
  ],
  "agreed_value_after_months": 60,
  "engine_bands_cc": [1000, 1500, null],
  "own_damage_rate_percent": {
    "A": [
      {"max_age_months": 60, "rates": [3.127, 3.300, 3.440]},
      {"max_age_months": 120, "rates": [3.283, 3.447, 3.612]},
      {"max_age_months": null, "rates": [3.362, 3.529, 3.698]}
    ],
    "B": [
      {"max_age_months": 60, "rates": [3.039, 3.191, 3.343]},
      {"max_age_months": null, "rates": [3.267, 3.430, 3.594]}
    ]
  },
  "voluntary_deductible_discount": [
    {"deductible": 2500, "rate": 0.20, "cap": 750},
    {"deductible": 5000, "rate": 0.25, "cap": 1200}
  ],
  "no_claim_bonus": [
    {"claim_free_years": 1, "rate": 0.20}, {"claim_free_years": 3, "rate": 0.40}
  ],
  "third_party_by_engine_band": [2094, "3500.50", 7897]
}"""


def test_a_tenant_json_tariff_is_read_exactly_and_rates():
    table = read_upload("acme.json", TENANT_JSON)

    assert (table.product_line, table.version, table.currency) == (
        "motor_private_car",
        "acme-2027-01",
        "INR",
    )
    # JSON numbers are read as decimals: 3.300 stays 3.300, never a float.
    assert table.data["own_damage_rate_percent"]["A"][0]["rates"][1] == D("3.300")
    assert isinstance(table.data["depreciation"][0]["rate"], D)
    assert table.data["own_damage_rate_percent"]["B"][1]["max_age_months"] is None
    # IDV 560000.00; OD 560000 x 3.300% = 18480.00; discount 25% = 4620.00 -> cap
    # 1200.00; bonus (3 years: 40%) 17280.00 x 40% = 6912.00; TP 3500.50;
    # premium 18480 - 1200 - 6912 + 3500.50 = 13868.50
    premium = rate(REFERENCE, table)
    assert results(premium) == (
        "560000.00",
        "18480.00",
        "1200.00",
        "6912.00",
        "3500.50",
        "13868.50",
    )
    assert {s.rate_table_version for s in premium.trace} == {"acme-2027-01"}
    # This tariff has no 15000 deductible, and 2 claim-free years earn the 1-year 20%.
    assert refused(risk(voluntary_deductible="15000"), table) == {
        "voluntary_deductible": "must be one of 0, 2500, 5000"
    }
    assert rate(risk(claim_free_years=2), table).trace[3].factor == "20%"


def _default_json(**changes: Any) -> bytes:
    document = json.loads(json.dumps(DEFAULT_TARIFF.data, default=str))
    document.update(changes)
    return json.dumps(document, indent=2).encode()


def test_without_a_version_key_the_version_comes_from_the_content():
    compact = read_upload("t.json", _default_json())
    spaced = read_upload("t.JSON", json.dumps(json.loads(_default_json()), indent=8).encode())
    assert compact.version.startswith("sha256-") and len(compact.version) == 7 + 16
    assert spaced.version == compact.version  # formatting is not content
    assert compact.data == DEFAULT_TARIFF.data
    third_party = ["2094", "3417", "7897"]
    other = read_upload("t.json", _default_json(third_party_by_engine_band=third_party))
    assert other.version != compact.version
    assert version_of(dict(DEFAULT_TARIFF.data), "INR") == compact.version


GRID = (
    ",".join(CSV_HEADER) + "\n"
    "A,60,3.127,3.300,3.440\n"
    "A,120,3.283,3.447,3.612\n"
    "A,,3.362,3.529,3.698\n"
    "B,60,3.039,3.191,3.343\n"
    "B,120,3.191,3.351,3.510\n"
    "B,,3.267,3.430,3.594\n"
)


def test_a_csv_own_damage_grid_replaces_the_default_grid():
    table = read_upload("grid.csv", ("\ufeff" + GRID + "\n").encode())  # BOM, blank line

    assert table.version.startswith("sha256-")
    assert table.currency == "INR"
    assert table.data["own_damage_rate_percent"]["A"][0] == {
        "max_age_months": 60,
        "rates": [D("3.127"), D("3.300"), D("3.440")],
    }
    assert table.data["no_claim_bonus"] == DEFAULT_TARIFF.data["no_claim_bonus"]
    # OD 560000 x 3.300% = 18480.00; discount capped 1500.00; bonus 16980.00 x 35% =
    # 5943.00; TP 3416.00; premium 18480 - 1500 - 5943 + 3416 = 14453.00
    assert rate(REFERENCE, table).premium == D("14453.00")
    # The default grid as CSV is the default tariff, so it gets the same derived version.
    default_grid = GRID.replace("3.300", "3.283").encode()
    assert (
        read_upload("g.csv", default_grid).version == read_upload("t.json", _default_json()).version
    )


@pytest.mark.parametrize(
    ("filename", "content", "errors"),
    [
        ("tariff.xlsx", b"{}", {"file": "Upload the tariff as .json or .csv"}),
        ("tariff", b"{}", {"file": "Upload the tariff as .json or .csv"}),
        ("t.json", b"\xff\xfe{}", {"file": "The file is not UTF-8 text"}),
        (
            "t.json",
            b'{"version": "x",',
            {
                "file": "is not valid JSON: Expecting property name enclosed in double quotes "
                "(line 1, column 17)"
            },
        ),
        ("t.json", b"[1, 2]", {"file": "The tariff must be a JSON object"}),
        (
            "grid.csv",
            b'"' + b"x" * 200_000 + b'"\n',
            {"file": "field larger than field limit (131072)"},
        ),
        ("t.json", b'{"agreed_value_after_months": NaN}', {"file": "NaN is not a number"}),
    ],
)
def test_unreadable_uploads_are_refused(filename: str, content: bytes, errors: dict):
    with pytest.raises(Refusal) as caught:
        read_upload(filename, content)
    assert caught.value.errors == errors


def _json_errors(content: bytes) -> dict[str, str]:
    with pytest.raises(Refusal) as caught:
        read_upload("t.json", content)
    return caught.value.errors


def test_every_bad_entry_of_a_json_tariff_is_named():
    document = json.loads(json.dumps(DEFAULT_TARIFF.data, default=str))
    document["version"] = "x" * 65
    document["currency"] = "rupees"
    document["colour"] = "red"
    document["rounding"] = "banker's"
    document["depreciation"][3]["max_age_months"] = 24
    document["depreciation"][4]["rate"] = "1.2"
    document["engine_bands_cc"] = [1000, 900, 2000]
    document["own_damage_rate_percent"]["A"][0]["rates"][1] = "-3.283"
    document["own_damage_rate_percent"]["B"][1]["rates"] = ["3.191", "3.351"]
    document["own_damage_rate_percent"]["B"][2]["max_age_months"] = 240
    document["voluntary_deductible_discount"][1]["deductible"] = "2500"
    document["voluntary_deductible_discount"][2]["cap"] = "2000.001"
    del document["voluntary_deductible_discount"][3]["rate"]
    document["no_claim_bonus"][0] = {"claim_free_years": 0, "rate": "0.2", "extra": 1}
    document["third_party_by_engine_band"] = ["2094", "3416"]
    del document["agreed_value_after_months"]

    assert _json_errors(json.dumps(document).encode()) == {
        "version": "must be text of 1 to 64 characters",
        "currency": "must be a three-letter ISO 4217 code such as INR",
        "colour": "is not part of the motor tariff",
        "rounding": 'is always "half-up to the cent at every step"',
        "agreed_value_after_months": "is required",
        "depreciation[3].max_age_months": "must be more than the entry before (24)",
        "depreciation[4].rate": "must be at least 0 and less than 1",
        "engine_bands_cc[2]": "must be null: the last band has no upper bound",
        "engine_bands_cc[1]": "must be more than 1000",
        "own_damage_rate_percent.A[0].rates[1]": "must be more than 0 and less than 100 (%)",
        "own_damage_rate_percent.B[1].rates": "must have one rate per engine band (3)",
        "own_damage_rate_percent.B[2].max_age_months": "must be null: the oldest band is open",
        "voluntary_deductible_discount[1].deductible": "is listed twice",
        "voluntary_deductible_discount[2].cap": "must have at most two decimal places",
        "voluntary_deductible_discount[3].rate": "is required",
        "no_claim_bonus[0].extra": "is not expected here",
        "no_claim_bonus[0].claim_free_years": "must be at least 1",
        "third_party_by_engine_band": "must have one amount per engine band (3)",
    }


def test_a_key_given_twice_and_a_gap_before_the_agreed_value_are_refused():
    text = _default_json(agreed_value_after_months=72).decode()
    twice = text.replace("{", '{"version": "a", "version": "b",', 1)
    assert _json_errors(twice.encode()) == {
        "version": "is given twice",
        "agreed_value_after_months": "leaves ages from 61 months without depreciation",
    }


def _csv_errors(text: str) -> dict[str, str]:
    with pytest.raises(Refusal) as caught:
        read_upload("grid.csv", text.encode())
    return caught.value.errors


def test_every_bad_line_of_a_csv_grid_is_named():
    assert _csv_errors("zone,age,a,b,c\nA,,1,2,3\n") == {
        "line 1": "must be zone,max_age_months,up_to_1000cc,1001_to_1500cc,over_1500cc"
    }
    assert _csv_errors(",".join(CSV_HEADER) + "\n") == {"file": "has no rows under the header"}
    bad = (
        ",".join(CSV_HEADER) + "\n"
        "A,60,3.127,abc,3.440\n"  # line 2
        "A,120,3.283,3.447\n"  # line 3: a column short
        "A,,3.362,3.529,0\n"  # line 4: a zero rate
        "A,200,3.4,3.5,3.6\n"  # line 5: after A's open band
        ",60,1,2,3\n"  # line 6: no zone
        "B,sixty,3.039,3.191,3.343\n"  # line 7
        "B,24,3.039,3.191,3.343\n"  # line 8: open band missing
    )
    assert _csv_errors(bad) == {
        "line 2.1001_to_1500cc": "must be a number",
        "line 3": "must have 5 columns, not 4",
        "line 4.over_1500cc": "must be more than 0 and less than 100 (%)",
        "line 5.zone": "zone A already ended with an open age band (empty max_age_months)",
        "line 6.zone": "is required",
        "line 7.max_age_months": "must be a whole number",
        "line 8.max_age_months": (
            "zone B needs a last row with an empty max_age_months (and older)"
        ),
    }


# --- through the plugin manager -------------------------------------------------------


@pytest.fixture
def host() -> PluginHost:
    host = PluginHost(strict=True)  # a raising hook fails the test rather than hides
    host.load_entry_points()
    return host


def test_hooks_answer_for_a_tenant_that_enabled_the_plugin(
    host: PluginHost, alpha: Tenant, beta: Tenant
):
    motor_tenant = replace(alpha, enabled_plugins=frozenset({"premium_motor"}))
    other_tenant = replace(beta, enabled_plugins=frozenset({"premium_life"}))

    def quote(
        tenant: Tenant,
        product_line: str,
        risk: dict[str, Any],
        table: RateTable = DEFAULT_TARIFF,
    ) -> Premium | None:
        return host.call(
            "powerbuyer_compute_premium",
            tenant=tenant,
            product_line=product_line,
            risk=risk,
            rate_table=table,
            start_date=date(2027, 1, 1),
        )

    premium = quote(motor_tenant, "motor_private_car", REFERENCE)
    assert premium is not None and premium.premium == D("14391.12")
    assert premium == rate(REFERENCE, DEFAULT_TARIFF)
    assert quote(other_tenant, "motor_private_car", REFERENCE) is None
    assert quote(motor_tenant, "term_life", REFERENCE) is None

    for _ in range(2):  # a refusal is an answer, not a failure: still enabled after
        with pytest.raises(Refusal) as caught:
            quote(motor_tenant, "motor_private_car", risk(voluntary_deductible="3000"))
        assert caught.value.errors == {
            "voluntary_deductible": "must be one of 0, 2500, 5000, 7500, 15000"
        }
    assert host.enabled_for("premium_motor", motor_tenant)

    table = host.call(
        "powerbuyer_parse_rate_table",
        tenant=motor_tenant,
        product_line="motor_private_car",
        filename="acme.json",
        content=TENANT_JSON,
    )
    assert isinstance(table, RateTable) and table.version == "acme-2027-01"
    on_tenant_table = quote(motor_tenant, "motor_private_car", REFERENCE, table)
    assert on_tenant_table is not None and on_tenant_table.premium == D("13868.50")
    assert (
        host.call(
            "powerbuyer_parse_rate_table",
            tenant=motor_tenant,
            product_line="example_pet",
            filename="acme.json",
            content=TENANT_JSON,
        )
        is None
    )
    with pytest.raises(Refusal) as caught:
        host.call(
            "powerbuyer_parse_rate_table",
            tenant=motor_tenant,
            product_line="motor_private_car",
            filename="grid.csv",
            content=b"zone\n",
        )
    assert set(caught.value.errors) == {"line 1"}
