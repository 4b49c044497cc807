"""The rounding rule of PRODUCT.md and the helpers every money path uses."""

from decimal import Decimal as D

import pytest

from core.money import format_amount, parse_amount, round_cents, split


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("13367.925", "13367.93"),  # PRODUCT.md's own example: half-up, not to even
        ("0.005", "0.01"),
        ("0.015", "0.02"),
        ("0.025", "0.03"),  # banker's rounding would give 0.02
        ("-0.005", "-0.01"),
        ("5909.68", "5909.68"),
        ("1.004999", "1.00"),
    ],
)
def test_round_cents_is_half_up(amount: str, expected: str) -> None:
    assert round_cents(D(amount)) == D(expected)
    assert str(round_cents(D(amount))) == expected


def test_round_cents_refuses_float() -> None:
    with pytest.raises(TypeError):
        round_cents(0.1)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0.1, True, "abc", "NaN", "Infinity", None, [1]])
def test_parse_amount_refuses(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_amount(bad)


def test_parse_amount_accepts_strings_ints_decimals() -> None:
    assert parse_amount("1,250.50") == D("1250.50")
    assert parse_amount(" 12 ") == D("12")
    assert parse_amount(7) == D("7")
    assert parse_amount(D("3.3")) == D("3.3")


@pytest.mark.parametrize(
    ("total", "n"), [("100.00", 3), ("1000.01", 12), ("0.05", 4), ("14391.12", 2)]
)
def test_split_sums_exactly_and_last_takes_the_rounding(total: str, n: int) -> None:
    parts = split(D(total), [D(1)] * n)
    assert sum(parts) == D(total)
    assert all(p == parts[0] for p in parts[:-1])
    assert abs(parts[-1] - parts[0]) < D("0.01") * n


def test_split_refuses_nothing_or_zero_weights() -> None:
    with pytest.raises(ValueError):
        split(D("1"), [])
    with pytest.raises(ValueError):
        split(D("1"), [D(0), D(0)])


def test_format_amount() -> None:
    assert format_amount(D("14391.12"), "INR") == "14,391.12 INR"
    assert format_amount(D("-1021.525")) == "-1,021.53"
