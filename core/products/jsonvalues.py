"""An exact, reversible JSON form of the values rate tables hold, and a plain one for
what people and integrators read.

JSON has no decimal and no date type, and a float would lose cents. Rate tables are
stored with `encode`, which tags every Decimal and date (`{"$decimal": "3.127"}`,
`{"$date": "2025-04-01"}`) so that `decode` gives back exactly the values the plugin
parsed: a tenant's tariff rates the same after a round trip through the database as
it did when it was uploaded. Traces, stored risks and API answers use `plain`, where
Decimals become strings ("14391.12"): readable, exact, but not typed on the way back,
which a trace does not need (replay re-rates from the risk and the table).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

DECIMAL, DATE = "$decimal", "$date"
_TAGS = frozenset({DECIMAL, DATE})


def encode(value: Any) -> Any:
    """`value` as JSON-ready data with every Decimal and date tagged. Floats are refused:
    a table that holds one has already lost precision somewhere."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        raise TypeError("rate tables hold Decimals, never floats")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a finite number")
        return {DECIMAL: str(value)}
    if isinstance(value, datetime):
        raise TypeError("rate tables hold dates, not date-times")
    if isinstance(value, date):
        return {DATE: value.isoformat()}
    if isinstance(value, Mapping):
        encoded: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"keys must be strings, not {type(key).__name__}")
            if key in _TAGS:
                raise ValueError(f"{key!r} is reserved for typed values")
            encoded[key] = encode(item)
        return encoded
    if isinstance(value, list | tuple):
        return [encode(item) for item in value]
    raise TypeError(f"cannot store a {type(value).__name__} in a rate table")


def decode(value: Any) -> Any:
    """The inverse of `encode` (tuples come back as lists)."""
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, item),) = value.items()
            if key == DECIMAL:
                return Decimal(item)
            if key == DATE:
                return date.fromisoformat(item)
        return {key: decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode(item) for item in value]
    return value


def plain(value: Any) -> Any:
    """JSON-ready data for reading: Decimals as strings, dates in ISO 8601."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        raise TypeError("amounts are Decimals, never floats")
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(item) for item in value]
    return str(value)
