"""The exact, reversible JSON form of rate tables, and the plain form of traces."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest

from core.products import jsonvalues
from plugins.premium_life.plugin import TERM_LIFE
from plugins.premium_motor.plugin import DEFAULT_TARIFF


def test_decimals_and_dates_survive_a_round_trip_through_json_text() -> None:
    value = {
        "rate": Decimal("3.1270"),
        "tiny": Decimal("1E-12"),
        "from": date(2026, 4, 1),
        "bands": [1000, None, "x", True, [Decimal("-0.5")]],
    }
    text = json.dumps(jsonvalues.encode(value))
    back = jsonvalues.decode(json.loads(text))
    assert back == value
    # Not merely equal: the same digits (3.1270 keeps its trailing zero).
    assert str(back["rate"]) == "3.1270" and str(back["tiny"]) == "1E-12"
    assert type(back["from"]) is date


@pytest.mark.parametrize("table", [DEFAULT_TARIFF, TERM_LIFE.default_rate_table])
def test_the_plugins_default_tables_round_trip_exactly(table) -> None:  # type: ignore[no-untyped-def]
    back = jsonvalues.decode(json.loads(json.dumps(jsonvalues.encode(table.data))))
    assert jsonvalues.plain(back) == jsonvalues.plain(table.data)
    assert back == jsonvalues.decode(jsonvalues.encode(table.data))


def test_floats_and_reserved_keys_are_refused() -> None:
    with pytest.raises(TypeError):
        jsonvalues.encode({"rate": 3.127})
    with pytest.raises(ValueError):
        jsonvalues.encode({"$decimal": "1"})
    with pytest.raises(ValueError):
        jsonvalues.encode(Decimal("NaN"))


def test_plain_is_readable_json() -> None:
    assert jsonvalues.plain({"a": Decimal("14391.12"), "d": date(2026, 1, 2), "t": (1, 2)}) == {
        "a": "14391.12",
        "d": "2026-01-02",
        "t": [1, 2],
    }
