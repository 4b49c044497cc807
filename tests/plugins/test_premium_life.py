"""Term life (plugins/premium_life): the SULT values and reference premiums of
PRODUCT.md, the risk refusals, age nearest birthday, imported XTbML / JSON / CSV
tables, and the hooks through the plugin manager for a tenant."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from core import plugins
from core.hookspecs import Premium, RateTable, Refusal
from core.plugins import PluginHost
from core.tenancy import Tenant
from plugins.premium_life import actuarial
from plugins.premium_life import plugin as life
from plugins.premium_life.basis import dump_basis, load_basis
from plugins.premium_life.risk import age_nearest_birthday
from plugins.premium_life.upload import parse_upload
from plugins.premium_life.xtbml import parse_xtbml

D = Decimal
START = date(2026, 1, 1)
DEFAULT = life.DEFAULT_BASIS
SULT = load_basis(DEFAULT.data).mortality[0]
REFERENCE = {
    "issue_age": 40,
    "term_years": 10,
    "sum_assured": "100000",
    "sex": "male",
    "smoker": False,
}


def places(value: Decimal, n: int) -> Decimal:
    return value.quantize(D(1).scaleb(-n), rounding=ROUND_HALF_UP)


def rate(risk: Mapping[str, Any], table: RateTable = DEFAULT, start: date = START) -> Premium:
    premium = life.powerbuyer_compute_premium(
        product_line="term_life", risk=risk, rate_table=table, start_date=start
    )
    assert premium is not None
    return premium


def refused(risk: Mapping[str, Any], table: RateTable = DEFAULT) -> dict[str, str]:
    with pytest.raises(Refusal) as caught:
        rate(risk, table)
    return caught.value.errors


def step(premium: Premium, name: str):
    return next(s for s in premium.trace if s.name == name)


# --- the SULT: PRODUCT.md's published values ------------------------------------------


def sult_to_end(age: int) -> list[Decimal]:
    """One-year survival from `age` to the end of the table at 120."""
    return SULT.survival(age, 120 - age)


def test_sult_published_values():
    i = D("0.05")
    assert places(actuarial.whole_life_annuity_due(sult_to_end(60), i), 4) == D("14.9041")
    assert places(actuarial.whole_life_assurance(sult_to_end(60), i), 5) == D("0.29028")
    assert places(actuarial.annuity_due(SULT.survival(60, 10), i), 4) == D("7.9555")
    assert places(actuarial.term_assurance(SULT.survival(50, 20), i), 5) == D("0.04020")
    assert places(actuarial.endowment_assurance(SULT.survival(60, 10), i), 5) == D("0.62116")
    assert places(actuarial.makeham_survival(70, D("0.00022"), D("2.7e-6"), D("1.124")), 6) == (
        D("0.989587")
    )


def test_whole_life_values_satisfy_a_equals_one_minus_d_annuity():
    i = D("0.05")
    for age in (30, 60, 90):
        ps = sult_to_end(age)
        with localcontext() as ctx:
            ctx.prec = 40
            d = i / (1 + i)
            gap = actuarial.whole_life_assurance(ps, i) - (
                1 - d * actuarial.whole_life_annuity_due(ps, i)
            )
        assert abs(gap) < D("1e-35")


def commutation_premiums(age: int, term: int, sum_assured: Decimal) -> tuple[Decimal, Decimal]:
    """Net and gross premiums the textbook way, from commutation columns D, N, M: an
    independent route to the same figures as the plugin's sums."""
    with localcontext() as ctx:
        ctx.prec = 40
        v = 1 / D("1.05")
        lives = [D(1)]
        for x in range(age, age + term):
            lives.append(lives[-1] * SULT.survival(x, 1)[0])
        dx = [v ** (age + k) * lives[k] for k in range(term + 1)]
        deaths = [lives[k] - lives[k + 1] for k in range(term)]
        cx = [v ** (age + k + 1) * deaths[k] for k in range(term)]
        annuity = sum(dx[:term]) / dx[0]
        a1 = sum(cx) / dx[0]
        net = sum_assured * a1 / annuity
        gross = (sum_assured * a1 + 50 * annuity) / (
            annuity * (1 - D("0.05")) - (D("0.40") - D("0.05"))
        )
    return places(net, 2), places(gross, 2)


def test_reference_premium_age_40_ten_years_100000():
    premium = rate(REFERENCE)
    assert (premium.premium, premium.currency) == (D("133.32"), "USD")
    assert step(premium, "net_premium").result == D("70.88")
    assert step(premium, "gross_premium").result == D("133.32")
    assert commutation_premiums(40, 10, D("100000")) == (D("70.88"), D("133.32"))


@pytest.mark.parametrize(
    ("age", "term", "sum_assured"),
    [(18, 40, "250000"), (30, 25, "500000.50"), (55, 15, "75000"), (70, 15, "10000")],
)
def test_other_ages_and_terms_match_the_commutation_columns(age, term, sum_assured):
    premium = rate({**REFERENCE, "issue_age": age, "term_years": term, "sum_assured": sum_assured})
    net, gross = commutation_premiums(age, term, D(sum_assured))
    assert (step(premium, "net_premium").result, premium.premium) == (net, gross)


def test_premium_rises_with_age_and_sum_assured():
    by_age = [rate({**REFERENCE, "issue_age": age}).premium for age in (25, 35, 45, 55)]
    assert by_age == sorted(by_age) and len(set(by_age)) == 4
    small, large = (rate({**REFERENCE, "sum_assured": sa}).premium for sa in ("50000", "100000"))
    assert small < large


def test_default_basis_is_the_same_for_every_sex_and_smoker_status():
    premiums = {
        rate({**REFERENCE, "sex": sex, "smoker": smoker}).premium
        for sex in ("male", "female")
        for smoker in (True, False)
    }
    assert premiums == {D("133.32")}


# --- the trace and replay -----------------------------------------------------------------


def test_trace_names_rounding_and_signed_steps_add_up_to_the_premium():
    premium = rate(REFERENCE)
    assert [s.name for s in premium.trace] == [
        "age",
        "mortality_basis",
        "interest",
        "survival_to_expiry",
        "term_assurance_A1",
        "annuity_due",
        "net_premium",
        "expense_loading",
        "gross_premium",
    ]
    assert sum(s.sign * s.result for s in premium.trace) == premium.premium
    gross = step(premium, "gross_premium")
    assert gross.inputs["unrounded"] == D("133.3211561189")
    assert gross.inputs["rounding"] == "half-up to the cent, at the end only"
    assert step(premium, "net_premium").inputs["unrounded"] == D("70.8845680027")
    assert step(premium, "mortality_basis").inputs["c"] == D("1.124")
    for s in premium.trace:
        assert s.rate_table_version == "default-1"
        for value in [s.result, *s.inputs.values()]:
            assert not isinstance(value, float)
            if isinstance(value, Decimal):
                assert -value.as_tuple().exponent <= 10  # quantized for the reader


def test_replay_from_risk_and_stored_table_gives_the_same_premium_and_trace():
    first = rate(REFERENCE)
    # Stored as JSON (Decimals as strings) and read back, as a database would.
    stored = json.loads(json.dumps(DEFAULT.data, default=str))
    again = rate(json.loads(json.dumps(REFERENCE)), replace(DEFAULT, data=stored))
    assert again == first


def test_the_callers_decimal_context_changes_nothing():
    with localcontext() as ctx:
        ctx.prec = 6
        assert rate(REFERENCE).premium == D("133.32")


def test_default_basis_round_trips_through_the_reader():
    assert dump_basis(load_basis(DEFAULT.data)) == DEFAULT.data


# --- 422: the risk refused, naming each field -----------------------------------------


def test_missing_fields_are_each_named():
    assert refused({}) == {
        "issue_age": "give the age at issue or the date of birth",
        "term_years": "is required",
        "sum_assured": "is required",
        "sex": "is required",
        "smoker": "is required",
    }
    assert set(refused({**REFERENCE, "issue_age": "", "sex": " "})) == {"issue_age", "sex"}


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"issue_age": 17}, "issue_age", "age 17 is outside the table (18 to 70)"),
        ({"issue_age": 71}, "issue_age", "age 71 is outside the table (18 to 70)"),
        ({"term_years": 4}, "term_years", "4 years is outside the table (5 to 40 years)"),
        ({"term_years": 41}, "term_years", "41 years is outside the table (5 to 40 years)"),
        (
            {"issue_age": 60, "term_years": 30},
            "term_years",
            "age 60 + 30 years = 90 is past the maximum age at expiry 85",
        ),
        ({"issue_age": 40.0}, "issue_age", "must be a whole number"),
        ({"issue_age": True}, "issue_age", "must be a whole number"),
        ({"term_years": "ten"}, "term_years", "must be a whole number"),
        (
            {"sum_assured": 100000.0},
            "sum_assured",
            'must be a decimal string such as "1250.00", not a float',
        ),
        ({"sum_assured": "-5"}, "sum_assured", "must be more than 0"),
        ({"sum_assured": 0}, "sum_assured", "must be more than 0"),
        ({"sum_assured": "lots"}, "sum_assured", "is not a number"),
        ({"sum_assured": "100.005"}, "sum_assured", "must be in whole cents"),
        ({"sum_assured": "1e20"}, "sum_assured", "must be less than 10^15"),
        ({"sex": "x"}, "sex", "must be one of female, male"),
        ({"smoker": "maybe"}, "smoker", "must be true or false"),
        ({"date_of_birth": "1985-13-01"}, "date_of_birth", "must be a date (YYYY-MM-DD)"),
        ({"date_of_birth": "2026-01-01"}, "date_of_birth", "must be before the start date"),
        ({"currency": "GBP"}, "currency", "is not a term life risk field"),
    ],
)
def test_bad_risk_is_refused_naming_the_field(change, field, reason):
    assert refused({**REFERENCE, **change}) == {field: reason}


def test_age_from_date_of_birth_outside_the_table_names_date_of_birth():
    risk = {k: v for k, v in REFERENCE.items() if k != "issue_age"}
    assert refused({**risk, "date_of_birth": "2010-01-01"}) == {
        "date_of_birth": "age 16 is outside the table (18 to 70)"
    }


def test_issue_age_that_disagrees_with_the_date_of_birth_is_refused():
    assert refused({**REFERENCE, "date_of_birth": "1980-01-01"}) == {
        "issue_age": "does not match the date of birth (age 46 nearest birthday on 2026-01-01)"
    }


def test_several_bad_fields_are_refused_together():
    errors = refused({"issue_age": 90, "term_years": 2, "sum_assured": 1.5, "sex": "m"})
    assert set(errors) == {"issue_age", "term_years", "sum_assured", "sex", "smoker"}


def test_strings_from_a_form_are_accepted():
    form = {"issue_age": "40", "term_years": "10", "sum_assured": "100,000.00"}
    premium = rate({**form, "sex": "Male", "smoker": "off"})
    assert premium.premium == D("133.32")


def test_sum_assured_limits_of_a_table():
    data = {**DEFAULT.data, "limits": {**DEFAULT.data["limits"], "min_sum_assured": "10000"}}
    data["limits"]["max_sum_assured"] = D("1000000")
    table = replace(DEFAULT, version="limits-1", data=data)
    assert refused({**REFERENCE, "sum_assured": "5000"}, table) == {
        "sum_assured": "must be at least 10000"
    }
    assert refused({**REFERENCE, "sum_assured": "2000000"}, table) == {
        "sum_assured": "must be at most 1000000"
    }
    assert rate(REFERENCE, table).premium == D("133.32")


def test_floats_in_a_stored_table_are_refused():
    with pytest.raises(Refusal) as caught:
        rate(REFERENCE, replace(DEFAULT, data={**DEFAULT.data, "interest": 0.05}))
    assert caught.value.errors == {
        "interest": 'must be a decimal number (a string such as "0.05"), not a float'
    }


def test_a_table_for_another_line_is_refused():
    with pytest.raises(Refusal) as caught:
        rate(REFERENCE, RateTable("motor_private_car", "default-1", {}))
    assert caught.value.errors == {"rate_table": "is for motor_private_car, not term_life"}


# --- age nearest birthday ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("born", "on", "age"),
    [
        (date(1985, 3, 10), date(2025, 3, 10), 40),  # the birthday itself
        (date(1985, 3, 10), date(2025, 9, 9), 40),  # a day short of half a year
        (date(1985, 3, 10), date(2025, 9, 10), 41),  # exactly half a year: rounds up
        (date(1985, 3, 10), date(2026, 3, 9), 41),  # the day before the next birthday
        (date(1985, 8, 31), date(2026, 2, 27), 40),
        (date(1985, 8, 31), date(2026, 2, 28), 41),  # 31 Aug + 6 months: 28 Feb
        (date(1988, 2, 29), date(2025, 2, 28), 37),  # a leap-day birthday in other years
        (date(1988, 2, 29), date(2025, 8, 27), 37),
        (date(1988, 2, 29), date(2025, 8, 28), 38),
    ],
)
def test_age_nearest_birthday(born, on, age):
    assert age_nearest_birthday(born, on) == age


def test_date_of_birth_rates_at_the_age_nearest_birthday():
    risk = {k: v for k, v in REFERENCE.items() if k != "issue_age"}
    start = date(2026, 7, 1)
    # Born 1 January 1986: exactly half a year past the 40th birthday on 1 July 2026.
    by_date = rate({**risk, "date_of_birth": "1986-01-01"}, start=start)
    assert by_date.premium == rate({**REFERENCE, "issue_age": 41}).premium
    assert step(by_date, "age").result == 41
    assert step(by_date, "age").inputs == {
        "date_of_birth": "1986-01-01",
        "start_date": "2026-07-01",
        "age_basis": "nearest birthday",
    }
    day_before = rate({**risk, "date_of_birth": "1986-01-02"}, start=start)
    assert step(day_before, "age").result == 40
    assert day_before.premium == D("133.32")


# --- imported tables: XTbML ---------------------------------------------------------------


def y_cells(rates: Mapping[int, str]) -> str:
    return "".join(f'<Y t="{age}">{q}</Y>' for age, q in rates.items())


def ultimate(description: str, rates: Mapping[int, str], scaling: int = 0) -> str:
    return (
        f"<Table><MetaData><ScalingFactor>{scaling}</ScalingFactor>"
        f"<TableDescription>{description}</TableDescription>"
        '<AxisDef id="Age"><ScaleType tc="3">Age</ScaleType><AxisName>Age</AxisName>'
        "</AxisDef></MetaData>"
        f"<Values><Axis>{y_cells(rates)}</Axis></Values></Table>"
    )


SELECT = (
    "<Table><MetaData><TableDescription>Select</TableDescription></MetaData><Values>"
    '<Axis t="18"><Axis><Y t="1">0.001</Y><Y t="2">0.002</Y></Axis></Axis>'
    "</Values></Table>"
)


def xtbml(*tables: str, name: str = "Test Basis 2025", keywords: str = "") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><XTbML><ContentClassification>'
        f"<TableIdentity>9001</TableIdentity><TableName>{name}</TableName>{keywords}"
        f"</ContentClassification>{''.join(tables)}</XTbML>"
    ).encode()


def flat(q: str, first: int = 18, last: int = 100) -> dict[int, str]:
    return {age: q for age in range(first, last + 1)}


def hand_premiums(q: Decimal, term: int, sum_assured: Decimal) -> tuple[Decimal, Decimal]:
    """A constant q_x by hand: A1 = v q (1 - (vp)^n) / (1 - vp), ä = (1 - (vp)^n) /
    (1 - vp), so the net premium is exactly SA v q."""
    with localcontext() as ctx:
        ctx.prec = 40
        v = 1 / D("1.05")
        vp = v * (1 - q)
        annuity = (1 - vp**term) / (1 - vp)
        a1 = v * q * annuity
        gross = (sum_assured * a1 + 50 * annuity) / (
            annuity * (1 - D("0.05")) - (D("0.40") - D("0.05"))
        )
        return places(sum_assured * v * q, 2), places(gross, 2)


@pytest.fixture
def smoker_file(tmp_path: Path) -> Path:
    """A small SOA-style file: a select table (skipped) and male smoker, male
    non-smoker and female tables, labelled in their descriptions."""
    path = tmp_path / "test-basis.xml"
    path.write_bytes(
        xtbml(
            SELECT,
            ultimate("Ultimate - Male Smoker, ANB", flat("0.02")),
            ultimate("Ultimate - Male Nonsmoker, ANB", flat("0.01")),
            ultimate("Ultimate - Female, ANB", flat("8", last=90), scaling=3),
        )
    )
    return path


def test_xtbml_import_labels_each_table_and_rates_smokers_higher(smoker_file: Path):
    table = parse_upload("term_life", smoker_file.name, smoker_file.read_bytes())
    assert table.version.startswith("test-basis-") and len(table.version) == len("test-basis-") + 8
    entries = [
        (m["sex"], m["smoker"], m["first_age"], len(m["q"])) for m in table.data["mortality"]
    ]
    assert entries == [("male", True, 18, 83), ("male", False, 18, 83), ("female", None, 18, 73)]
    assert table.data["mortality"][2]["q"][0] == D("0.008")  # 8 per thousand
    assert table.data["interest"] == D("0.05") and table.data["basis"] == "Test Basis 2025"

    smoker = rate({**REFERENCE, "smoker": True}, table)
    non_smoker = rate(REFERENCE, table)
    female = rate({**REFERENCE, "sex": "female", "smoker": True}, table)
    sa = D("100000")
    assert (step(smoker, "net_premium").result, smoker.premium) == hand_premiums(D("0.02"), 10, sa)
    assert (step(non_smoker, "net_premium").result, non_smoker.premium) == hand_premiums(
        D("0.01"), 10, sa
    )
    assert step(smoker, "net_premium").result == D("1904.76")  # 100,000 x 0.02 / 1.05
    assert step(non_smoker, "net_premium").result == D("952.38")  # 100,000 x 0.01 / 1.05
    assert female.premium == hand_premiums(D("0.008"), 10, sa)[1]
    assert step(smoker, "mortality_basis").inputs["table"] == "Ultimate - Male Smoker, ANB"
    assert step(smoker, "mortality_basis").result == D("0.02")


def test_imported_table_refuses_who_and_what_it_does_not_cover(smoker_file: Path):
    table = parse_upload("term_life", smoker_file.name, smoker_file.read_bytes())
    # The female table stops at 90: age 60 for 30 years needs q up to age 89, fine,
    # but a limit of 95 at expiry would let 70 + 25 run past it.
    data = {**table.data, "limits": {**table.data["limits"], "max_age_at_expiry": 95}}
    wider = replace(table, data=data)
    assert refused({**REFERENCE, "sex": "female", "issue_age": 70, "term_years": 25}, wider) == {
        "term_years": "age 70 + 25 years runs past the table's last age 90"
    }
    only_men = replace(table, data={**table.data, "mortality": table.data["mortality"][:2]})
    reason = "the rate table has no mortality for female smokers"
    assert refused({**REFERENCE, "sex": "female", "smoker": True}, only_men) == {
        "sex": reason,
        "smoker": reason,
    }


def test_file_level_labels_apply_to_a_single_table_file():
    content = xtbml(
        ultimate("Ultimate table", flat("0.01")),
        name="2001 CSO Preferred - Female Nonsmoker, ANB",
    )
    (table,) = parse_xtbml(content).tables
    assert (table.sex, table.smoker, table.first_age, table.q[0]) == (
        "female",
        False,
        18,
        D("0.01"),
    )


def test_smoker_words():
    document = parse_xtbml(
        xtbml(
            ultimate("Aggregate (Unismoke)", flat("0.01")),
            ultimate("Male Non-Smoker", flat("0.01")),
            ultimate("Male Tobacco", flat("0.02")),
            ultimate("Female Smoker and Nonsmoker combined", flat("0.01")),
        )
    )
    assert [(t.sex, t.smoker) for t in document.tables] == [
        (None, None),
        ("male", False),
        ("male", True),
        ("female", None),
    ]


@pytest.mark.parametrize(
    ("content", "errors"),
    [
        (b"not xml at all", {"file": "is not well-formed XML (syntax error: line 1, column 0)"}),
        (b"<Table/>", {"file": "is not an XTbML document (its root is <Table>)"}),
        (
            b'<!DOCTYPE x [<!ENTITY a "b">]><XTbML/>',
            {"file": "must not declare a DOCTYPE or entities"},
        ),
        (xtbml(), {"file": "has no <Table>"}),
        (xtbml(SELECT), {"file": "has no ultimate (one-axis, by age) table"}),
        (
            xtbml(ultimate("Male", {**flat("0.01", 18, 40), 30: "1.5"})),
            {"Table[1].Y[t=30]": "q at age 30 must be between 0 and 1"},
        ),
        (
            xtbml(ultimate("Male", {**flat("0.01", 18, 40), 30: "-0.1"})),
            {"Table[1].Y[t=30]": "q at age 30 must be between 0 and 1"},
        ),
        (
            xtbml(ultimate("Male", {**flat("0.01", 18, 40), 30: "abc"})),
            {"Table[1].Y[t=30]": "'abc' is not a number"},
        ),
        (
            xtbml(ultimate("Male", {**flat("0.01", 18, 29), **flat("0.01", 31, 40)})),
            {"Table[1].Y[t=31]": "ages must be contiguous; 30 is missing"},
        ),
        (
            xtbml(ultimate("Male", {**flat("0.01", 18, 40), 30: ""})),
            {"Table[1].Y[t=30]": "has no rate: ages must be contiguous (30 is missing)"},
        ),
        (
            xtbml(ultimate("Male Smoker", flat("0.02")), ultimate("Smoker, male", flat("0.03"))),
            {
                "Table[2]": "a second table for male smokers (Table[1] is one); say each "
                "table's sex and smoker status in its TableDescription"
            },
        ),
    ],
)
def test_bad_xtbml_is_refused_naming_the_entry(content: bytes, errors: dict[str, str]):
    with pytest.raises(Refusal) as caught:
        parse_upload("term_life", "table.xml", content)
    assert caught.value.errors == errors


def test_padding_cells_around_the_rates_are_allowed():
    content = xtbml(ultimate("Male", {16: "", 17: "", **flat("0.01", 18, 30), 31: ""}))
    (table,) = parse_xtbml(content).tables
    assert (table.first_age, len(table.q)) == (18, 13)


# --- imported tables: JSON and CSV ---------------------------------------------------------


def test_json_table_with_embedded_soa_files_and_own_loadings():
    smoker = xtbml(ultimate("Ultimate", flat("0.02")), name="Some table").decode()
    upload = {
        "version": "life-2026",
        "basis": "Brokerage basis",
        "currency": "GBP",
        "interest": 0.04,
        "loadings": {"first_premium": "0.30"},
        "mortality": [
            {"sex": None, "smoker": True, "xtbml": smoker},
            {"smoker": False, "first_age": 18, "q": [0.01] * 83},
        ],
    }
    table = parse_upload("term_life", "basis.json", json.dumps(upload).encode())
    assert (table.version, table.currency) == ("life-2026", "GBP")
    assert table.data["interest"] == D("0.04")
    assert table.data["loadings"]["first_premium"] == D("0.30")
    assert table.data["loadings"]["later_premiums"] == D("0.05")  # the default
    assert [(m["sex"], m["smoker"]) for m in table.data["mortality"]] == [
        (None, True),
        (None, False),
    ]
    smoker_premium = rate({**REFERENCE, "smoker": True}, table)
    non_smoker = rate(REFERENCE, table)
    assert smoker_premium.currency == "GBP"
    # Net premium = SA v q exactly, at 4%: 100,000 x 0.02 / 1.04 and 100,000 x 0.01 / 1.04.
    assert step(smoker_premium, "net_premium").result == D("1923.08")
    assert step(non_smoker, "net_premium").result == D("961.54")


@pytest.mark.parametrize(
    ("upload", "errors"),
    [
        (
            {"mortality": [{"first_age": 18, "q": ["0.01", "0.02", "1.5"]}]},
            {"mortality[0].q[2]": "q at age 20 must be between 0 and 1"},
        ),
        (
            {"mortality": [{"q": {"18": "0.01", "20": "0.01"}}]},
            {"mortality[0].q.20": "ages must be contiguous; 19 is missing"},
        ),
        (
            {"mortality": [{"law": "makeham", "A": "0.00022", "B": "0", "c": "0.9"}]},
            {"mortality[0].B": "must be more than 0", "mortality[0].c": "must be more than 1"},
        ),
        ({"mortality": []}, {"mortality": "must list at least one mortality table"}),
        (
            {"mortality": [{"q": {"18": "0.01"}}], "loadings": {"first_premium": "1"}},
            {"loadings.first_premium": "must be at least 0 and less than 1"},
        ),
        (
            {"mortality": [{"q": {"18": "0.01"}}], "limits": {"max_age": 10}},
            {"limits.max_age": "must not be below min_age"},
        ),
        (
            {"mortality": [{"q": {"18": "0.01"}}], "colour": "red", "version": "a b"},
            {
                "colour": "is not a key of a term life rate table",
                "version": "must be 1 to 64 letters, digits, dots, dashes or underscores",
            },
        ),
        (
            {"mortality": [{"sex": "male", "xtbml": xtbml(SELECT).decode()}]},
            {"mortality[0].xtbml": "has no ultimate (one-axis, by age) table"},
        ),
        (
            {"mortality": [{"q": {"18": "0.01"}}, {"law": "table", "q": {"18": "0.02"}}]},
            {"mortality[1]": "a second table for anyone (mortality[0] is one)"},
        ),
    ],
)
def test_bad_json_table_is_refused_naming_the_entry(upload: dict, errors: dict[str, str]):
    with pytest.raises(Refusal) as caught:
        parse_upload("term_life", "basis.json", json.dumps(upload).encode())
    assert caught.value.errors == errors


def test_csv_table_by_sex_and_smoker_status():
    rows = ["age,male_smoker,male_nonsmoker,female"]
    rows += [f"{age},0.02,0.01,{'0.008' if age <= 90 else ''}" for age in range(18, 101)]
    table = parse_upload("term_life", "rates 2026.csv", "\n".join(rows).encode())
    assert table.version.startswith("rates-2026-")
    assert [(m["sex"], m["smoker"], len(m["q"])) for m in table.data["mortality"]] == [
        ("male", True, 83),
        ("male", False, 83),
        ("female", None, 73),
    ]
    assert step(rate({**REFERENCE, "smoker": True}, table), "net_premium").result == D("1904.76")


def test_bad_csv_and_unknown_formats_are_refused():
    with pytest.raises(Refusal) as caught:
        parse_upload("term_life", "r.csv", b"age,male_smoker,purple\n18,0.01,0.01\n")
    assert caught.value.errors == {
        "header.purple": "must be one of male_smoker, male_nonsmoker, female_smoker, "
        "female_nonsmoker, male, female, smoker, nonsmoker, all"
    }
    with pytest.raises(Refusal) as caught:
        parse_upload("term_life", "r.csv", b"age,male\n18,0.01\n19,2\n20,\n21,0.01\n")
    assert caught.value.errors == {
        "row 3.male": "q at age 19 must be between 0 and 1",
        "male": "ages must be contiguous; 20 is missing",
    }
    with pytest.raises(Refusal) as caught:
        parse_upload("term_life", "rates.xlsx", b"PK")
    assert caught.value.errors == {
        "file": "term life rate tables are .xml (SOA XTbML), .json or .csv files"
    }


# --- the hooks through the plugin manager, for a tenant ----------------------------------------


def test_hooks_through_the_plugin_host_for_a_tenant(
    app: Flask, alpha: Tenant, beta: Tenant, smoker_file: Path
):
    host = plugins.manager(app)
    with_life = replace(alpha, enabled_plugins=frozenset({"premium_life"}))
    without = replace(beta, enabled_plugins=frozenset())
    args = {"risk": REFERENCE, "rate_table": DEFAULT, "start_date": START}

    premium = host.call(
        "powerbuyer_compute_premium", tenant=with_life, product_line="term_life", **args
    )
    assert premium.premium == D("133.32")
    assert (
        host.call("powerbuyer_compute_premium", tenant=without, product_line="term_life", **args)
        is None
    )
    # Another line's quote is not ours to answer.
    assert (
        host.call("powerbuyer_compute_premium", tenant=with_life, product_line="travel", **args)
        is None
    )

    table = host.call(
        "powerbuyer_parse_rate_table",
        tenant=with_life,
        product_line="term_life",
        filename=smoker_file.name,
        content=smoker_file.read_bytes(),
    )
    smoker = host.call(
        "powerbuyer_compute_premium",
        tenant=with_life,
        product_line="term_life",
        risk={**REFERENCE, "smoker": True},
        rate_table=table,
        start_date=START,
    )
    assert step(smoker, "net_premium").result == D("1904.76")

    # A refusal reaches the caller and leaves the plugin enabled.
    for _ in range(2):
        with pytest.raises(Refusal) as caught:
            host.call(
                "powerbuyer_compute_premium",
                tenant=with_life,
                product_line="term_life",
                risk={**REFERENCE, "issue_age": 80},
                rate_table=DEFAULT,
                start_date=START,
            )
        assert caught.value.errors == {"issue_age": "age 80 is outside the table (18 to 70)"}
    assert host.enabled_for("premium_life", with_life)


def test_hooks_in_a_strict_host_of_their_own(alpha: Tenant):
    host = PluginHost(strict=True)
    host.register(life, "premium_life")
    tenant = replace(alpha, enabled_plugins=frozenset({"premium_life"}))
    premium = host.call(
        "powerbuyer_compute_premium",
        tenant=tenant,
        product_line="term_life",
        risk={**REFERENCE, "issue_age": 30, "term_years": 20},
        rate_table=DEFAULT,
        start_date=START,
    )
    assert premium.premium == commutation_premiums(30, 20, D("100000"))[1]
    assert (
        host.call(
            "powerbuyer_parse_rate_table",
            tenant=tenant,
            product_line="motor_private_car",
            filename="t.json",
            content=b"{}",
        )
        is None
    )
