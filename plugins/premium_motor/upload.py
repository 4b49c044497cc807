"""Reading a motor tariff a tenant uploads, by the file's extension.

**JSON** (`*.json`): the whole tariff, an object shaped like `DEFAULT_TARIFF.data`
(see `tariff.py`), with two optional keys beside it: `"version"` (text, at most 64
characters) and `"currency"` (ISO 4217, default INR). Numbers may be JSON numbers, read
exactly as decimals (3.283 stays 3.283), or decimal strings. A key given twice is
refused rather than the last one silently winning.

**CSV** (`*.csv`, UTF-8, a BOM allowed, comma-separated): the own-damage rate grid, the
rest of the tariff (depreciation, engine bands, deductible discounts, no-claim bonus,
third party) being the default's. A header row, then one row per zone and age band,
the rates in % of IDV for each engine band of the default tariff:

    zone,max_age_months,up_to_1000cc,1001_to_1500cc,over_1500cc
    A,60,3.127,3.283,3.440
    A,120,3.283,3.447,3.612
    A,,3.362,3.529,3.698
    B,60,3.039,3.191,3.343
    B,120,3.191,3.351,3.510
    B,,3.267,3.430,3.594

A zone's rows run from the youngest vehicles to the oldest; an empty `max_age_months`
means "and older" and ends the zone. Errors name the line and column
(`line 3.over_1500cc`).

Either way the version is the JSON `"version"` when there is one, otherwise derived from
the tariff itself (`sha256-` and 16 hex digits of its canonical form), so the same
tariff uploaded twice, however formatted, has the same version.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from decimal import Decimal
from typing import Any

from core.hookspecs import RateTable, Refusal

from .tariff import CODE, DEFAULT_TARIFF, check_tariff

CSV_HEADER = ("zone", "max_age_months", "up_to_1000cc", "1001_to_1500cc", "over_1500cc")
CURRENCY = re.compile(r"[A-Z]{3}")


def read_upload(filename: str, content: bytes) -> RateTable:
    """The uploaded tariff checked and normalised, or `Refusal` naming each bad entry."""
    kind = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if kind not in ("json", "csv"):
        raise Refusal("Upload the tariff as .json or .csv", field="file")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Refusal("The file is not UTF-8 text", field="file") from None
    if kind == "json":
        return _from_json(text)
    return _from_csv(text)


def version_of(data: dict[str, Any], currency: str) -> str:
    """A version derived from the tariff's content: equal tariffs, equal versions."""

    def exact(value: object) -> str:
        # 3.44 and 3.440 are one rate; every digit kept, no float in between.
        if not isinstance(value, Decimal):
            raise TypeError(f"{type(value).__name__} in a checked tariff")
        return format(value.normalize(), "f")

    canonical = json.dumps(
        {"currency": currency, "tariff": data}, sort_keys=True, default=exact, separators=(",", ":")
    )
    return "sha256-" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _from_json(text: str) -> RateTable:
    duplicates: list[str] = []

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                duplicates.append(key)
            seen[key] = value
        return seen

    def no_constant(name: str) -> None:
        raise ValueError(f"{name} is not a number")

    try:
        document = json.loads(
            text,
            parse_float=Decimal,
            parse_constant=no_constant,
            object_pairs_hook=no_duplicates,
        )
    except json.JSONDecodeError as exc:
        message = f"is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        raise Refusal("The file is not valid JSON", errors={"file": message}) from None
    except (ValueError, RecursionError) as exc:
        reason = str(exc) if isinstance(exc, ValueError) else "is nested too deeply"
        raise Refusal("The file is not valid JSON", errors={"file": reason}) from None
    if not isinstance(document, dict):
        raise Refusal("The tariff must be a JSON object", field="file")

    errors = {key: "is given twice" for key in duplicates}
    document = dict(document)
    version = document.pop("version", None)
    currency = document.pop("currency", DEFAULT_TARIFF.currency)
    if version is not None and not (
        isinstance(version, str) and version.strip() and len(version.strip()) <= 64
    ):
        errors["version"] = "must be text of 1 to 64 characters"
    if not (isinstance(currency, str) and CURRENCY.fullmatch(currency)):
        errors["currency"] = "must be a three-letter ISO 4217 code such as INR"
    try:
        data = check_tariff(document)
    except Refusal as refused:
        errors.update(refused.errors)
    if errors:
        count = len(errors)
        raise Refusal(
            f"The motor tariff has {count} error{'s' if count > 1 else ''}", errors=errors
        )
    return RateTable(
        product_line=CODE,
        version=version.strip() if version is not None else version_of(data, currency),
        data=data,
        currency=currency,
    )


def _from_csv(text: str) -> RateTable:
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:  # a NUL byte, an unterminated quote, a huge field
        raise Refusal("The file is not readable CSV", errors={"file": str(exc)}) from None
    header = tuple(cell.strip() for cell in rows[0]) if rows else ()
    if header != CSV_HEADER:
        raise Refusal(
            "The CSV header is not the own-damage grid's",
            errors={"line 1": f"must be {','.join(CSV_HEADER)}"},
        )
    errors: dict[str, str] = {}
    grid: dict[str, list[dict[str, Any]]] = {}
    # Where each zone's band came from, to name a line rather than a JSON path.
    lines: dict[str, list[int]] = {}
    closed: set[str] = set()
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # a blank line, often the last one
        if len(row) != len(CSV_HEADER):
            errors[f"line {number}"] = f"must have {len(CSV_HEADER)} columns, not {len(row)}"
            continue
        zone, age, *rates = (cell.strip() for cell in row)
        if not zone:
            errors[f"line {number}.zone"] = "is required"
            continue
        if zone in closed:
            errors[f"line {number}.zone"] = (
                f"zone {zone} already ended with an open age band (empty max_age_months)"
            )
            continue
        if not age:
            closed.add(zone)
        grid.setdefault(zone, []).append({"max_age_months": age or None, "rates": rates})
        lines.setdefault(zone, []).append(number)
    for zone in grid:
        if zone not in closed:
            last = lines[zone][-1]
            errors[f"line {last}.max_age_months"] = (
                f"zone {zone} needs a last row with an empty max_age_months (and older)"
            )
    if not grid:
        # Nothing to check against the rest of the tariff: say what the lines lack.
        raise Refusal(
            "The own-damage grid has no usable rows",
            errors=errors or {"file": "has no rows under the header"},
        )
    data = {**DEFAULT_TARIFF.data, "own_damage_rate_percent": grid}
    try:
        checked = check_tariff(data)
    except Refusal as refused:
        # The CSV's own words for a line win over the checker's for the same cell.
        errors = {**_csv_paths(refused.errors, lines), **errors}
    if errors:
        count = len(errors)
        raise Refusal(
            f"The own-damage grid has {count} error{'s' if count > 1 else ''}", errors=errors
        )
    currency = DEFAULT_TARIFF.currency or "INR"
    return RateTable(
        product_line=CODE, version=version_of(checked, currency), data=checked, currency=currency
    )


GRID_PATH = re.compile(
    r"own_damage_rate_percent\.(?P<zone>.+?)\[(?P<row>\d+)\]\.(?:(?P<age>max_age_months)"
    r"|rates\[(?P<rate>\d+)\])$"
)


def _csv_paths(errors: dict[str, str], lines: dict[str, list[int]]) -> dict[str, str]:
    """The checker's paths into the grid ("own_damage_rate_percent.A[1].rates[2]") as the
    file's lines and columns ("line 3.over_1500cc")."""
    named = {}
    for path, reason in errors.items():
        found = GRID_PATH.match(path)
        if found is None or found["zone"] not in lines:
            named[path] = reason
            continue
        line = lines[found["zone"]][int(found["row"])]
        column = "max_age_months" if found["age"] else CSV_HEADER[2 + int(found["rate"])]
        named[f"line {line}.{column}"] = reason
    return named
