"""A term-life rate table a tenant uploads: SOA XTbML, JSON or CSV, checked and
returned in the canonical data shape of `plugins.premium_life.basis`.

- `.xml`: one SOA XTbML document (`plugins.premium_life.xtbml`); its ultimate tables
  become the mortality, labelled by sex and smoker status from their descriptions.
  Interest, loadings and limits are PRODUCT.md's defaults.
- `.json`: an object with `mortality` (required) and optionally `version`, `basis`
  (a name), `currency`, `interest`, `loadings`, `limits`, in the shape `basis`
  documents. A `mortality` entry may instead carry the text of an SOA file in
  `xtbml`, with `sex` and `smoker` saying outright whom it is for (the way to combine
  the four single-table files mort.soa.org exports into one basis):

      {"version": "cso-2025", "basis": "2001 CSO", "interest": "0.04",
       "mortality": [{"sex": "male", "smoker": true, "xtbml": "<XTbML>...</XTbML>"},
                     {"sex": "female", "smoker": null, "first_age": 18,
                      "q": ["0.00045", ...]}]}

- `.csv`: a header `age` and one column per table named `male_smoker`,
  `male_nonsmoker`, `female_smoker`, `female_nonsmoker`, `male`, `female`, `smoker`,
  `nonsmoker` or `all`; a row per age, q_x in the cells (blank where a table has none).

The version is the JSON's `version`, else the file's name and the start of the
content's SHA-256, so the same file always gives the same version.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from decimal import Decimal, localcontext
from pathlib import PurePath
from typing import Any

from core.hookspecs import RateTable, Refusal
from plugins.premium_life import actuarial
from plugins.premium_life.basis import dump_basis, load_basis, number, whole
from plugins.premium_life.xtbml import parse_xtbml

JSON_KEYS = ("version", "basis", "currency", "interest", "loadings", "limits", "mortality")
CSV_COLUMNS: dict[str, tuple[str | None, bool | None]] = {
    "male_smoker": ("male", True),
    "male_nonsmoker": ("male", False),
    "female_smoker": ("female", True),
    "female_nonsmoker": ("female", False),
    "male": ("male", None),
    "female": ("female", None),
    "smoker": (None, True),
    "nonsmoker": (None, False),
    "all": (None, None),
}
VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CURRENCY = re.compile(r"^[A-Z]{3}$")
FORMATS = "term life rate tables are .xml (SOA XTbML), .json or .csv files"


def parse_upload(product_line: str, filename: str, content: bytes) -> RateTable:
    with localcontext(actuarial.context()):
        return _parse(product_line, filename, content)


def _parse(product_line: str, filename: str, content: bytes) -> RateTable:
    suffix = PurePath(filename).suffix.lower()
    currency: str | None = None
    version: str | None = None
    if suffix == ".xml":
        document = parse_xtbml(content)
        data: dict[str, Any] = {
            "basis": document.name,
            "mortality": [table.as_mortality() for table in document.tables],
        }
    elif suffix == ".json":
        data, version, currency = _from_json(content)
    elif suffix == ".csv":
        data = _from_csv(PurePath(filename).stem, content)
    else:
        raise Refusal(FORMATS, errors={"file": FORMATS})
    basis = load_basis(data)
    if version is None:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", PurePath(filename).stem).strip("-.")[:40]
        version = f"{stem or 'table'}-{hashlib.sha256(content).hexdigest()[:8]}"
    return RateTable(product_line, version, dump_basis(basis), currency=currency)


def _from_json(content: bytes) -> tuple[dict[str, Any], str | None, str | None]:
    try:
        # Numbers become Decimal, never float.
        raw = json.loads(content.decode("utf-8-sig"), parse_float=Decimal)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Refusal("not valid JSON", errors={"file": f"is not valid JSON ({exc})"}) from None
    if not isinstance(raw, dict):
        raise Refusal("not a rate table", errors={"file": "must be a JSON object"})
    errors: dict[str, str] = {key: "is not a key of a term life rate table" for key in raw}
    for key in JSON_KEYS:
        errors.pop(key, None)
    version = raw.get("version")
    if version is not None and not (isinstance(version, str) and VERSION.match(version)):
        errors["version"] = "must be 1 to 64 letters, digits, dots, dashes or underscores"
    currency = raw.get("currency")
    if currency is not None and not (isinstance(currency, str) and CURRENCY.match(currency)):
        errors["currency"] = "must be an ISO 4217 code such as GBP"
    mortality = raw.get("mortality")
    if isinstance(mortality, list):
        mortality = [_expand(entry, f"mortality[{i}]", errors) for i, entry in enumerate(mortality)]
    if errors:
        raise Refusal("the rate table is not valid", errors=errors)
    data = {key: raw[key] for key in ("basis", "interest", "loadings", "limits") if key in raw}
    data["mortality"] = mortality
    return data, version, currency


def _expand(entry: Any, path: str, errors: dict[str, str]) -> Any:
    """A `mortality` entry, with an embedded SOA file read into rates."""
    if not isinstance(entry, dict) or "xtbml" not in entry:
        return entry
    text = entry["xtbml"]
    if not isinstance(text, str):
        errors[f"{path}.xtbml"] = "must be the text of an XTbML file"
        return entry
    try:
        document = parse_xtbml(text.encode("utf-8"), prefix=f"{path}.xtbml")
    except Refusal as refusal:
        errors.update(refusal.errors)
        return entry
    if len(document.tables) > 1:
        errors[path] = (
            f"embed one table per entry; this XTbML file has {len(document.tables)} "
            "ultimate tables (upload it as .xml to use their own labels)"
        )
        return entry
    # The entry's sex, smoker and name, where given, say more than the file's words.
    labelled = {key: entry[key] for key in ("sex", "smoker", "name") if key in entry}
    return {**document.tables[0].as_mortality(), **labelled}


def _from_csv(name: str, content: bytes) -> dict[str, Any]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Refusal("not UTF-8", errors={"file": "must be UTF-8 text"}) from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise Refusal("empty file", errors={"file": "is empty"})
    header = [cell.strip().lower() for cell in rows[0]]
    errors: dict[str, str] = {}
    if not header or header[0] != "age":
        errors["header"] = "the first column must be age"
    for column in header[1:]:
        if column not in CSV_COLUMNS:
            errors[f"header.{column}"] = f"must be one of {', '.join(CSV_COLUMNS)}"
    if len(set(header)) != len(header):
        errors["header"] = "names a column twice"
    if len(header) < 2:
        errors["header"] = "needs at least one column of rates after age"
    if errors:
        raise Refusal("the CSV rate table is not valid", errors=errors)
    rates: dict[str, dict[int, Decimal]] = {column: {} for column in header[1:]}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        try:
            age = whole(row[0])
        except ValueError:
            errors[f"row {line}.age"] = "must be a whole number"
            continue
        for column, cell in zip(header[1:], row[1:], strict=False):
            if not cell.strip():
                continue
            try:
                q = number(cell)
            except ValueError as exc:
                errors[f"row {line}.{column}"] = str(exc)
                continue
            if not 0 <= q <= 1:
                errors[f"row {line}.{column}"] = f"q at age {age} must be between 0 and 1"
            rates[column][age] = q
    for column, by_age in rates.items():
        ages = sorted(by_age)
        if not ages:
            errors[f"header.{column}"] = "has no rates"
            continue
        missing = sorted(set(range(ages[0], ages[-1] + 1)) - set(ages))
        if missing:
            errors[column] = f"ages must be contiguous; {missing[0]} is missing"
    if errors:
        raise Refusal("the CSV rate table is not valid", errors=errors)
    return {
        "basis": name,
        "mortality": [
            {
                "sex": CSV_COLUMNS[column][0],
                "smoker": CSV_COLUMNS[column][1],
                "name": f"{name} {column}",
                "law": "table",
                "first_age": min(by_age),
                "q": [by_age[age] for age in sorted(by_age)],
            }
            for column, by_age in rates.items()
        ],
    }
