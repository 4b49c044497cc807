"""Money: Decimal amounts and the one rounding rule the product uses.

Amounts are `Decimal` in Python and `NUMERIC` in SQL, never float: a float cannot
hold 0.10 and its errors surface as cents that do not add up. Every rounding is
explicit and goes through `round_cents`, half-up to the cent (13,367.925 ->
13,367.93), never banker's rounding (PRODUCT.md). Where an amount is split into
parts (installments, pro-rata), the parts are rounded and the last part takes the
remainder so they sum exactly to the whole (`split`).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def round_cents(amount: Decimal) -> Decimal:
    """Round half-up to the cent: 0.005 -> 0.01, -0.005 -> -0.01 (away from zero)."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"money must be Decimal, not {type(amount).__name__}")
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def parse_amount(value: object) -> Decimal:
    """A Decimal from user input (str, int or Decimal); floats are refused, not guessed.

    Raises ValueError with a message fit for a form or a 422.
    """
    if isinstance(value, bool | float):
        raise ValueError('must be a decimal string such as "1250.00", not a float')
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int | str):
        try:
            amount = Decimal(str(value).strip().replace(",", "").replace("_", ""))
        except InvalidOperation:
            raise ValueError("is not a number") from None
    else:
        raise ValueError("is not a number")
    if not amount.is_finite():
        raise ValueError("is not a number")
    return amount


def split(total: Decimal, weights: Sequence[Decimal]) -> list[Decimal]:
    """Split `total` in proportion to `weights`, each part rounded to the cent and the
    last part taking the rounding, so the parts always sum exactly to `total`.
    """
    if not weights:
        raise ValueError("nothing to split into")
    whole = sum(weights, Decimal(0))
    if whole <= 0:
        raise ValueError("weights must sum to more than zero")
    parts = [round_cents(total * w / whole) for w in weights[:-1]]
    parts.append(round_cents(total) - sum(parts, Decimal(0)))
    return parts


def format_amount(amount: Decimal, currency: str | None = None) -> str:
    """`14,391.12 INR` style: thousands separators, two decimals, optional currency."""
    text = f"{round_cents(amount):,.2f}"
    return f"{text} {currency}" if currency else text
