"""Read mortality tables from SOA XTbML, the Society of Actuaries' XML table format
(the files mort.soa.org exports), with the standard library's ElementTree.

    <XTbML>
      <ContentClassification>
        <TableIdentity>1076</TableIdentity>
        <TableName>... Male Nonsmoker, ANB</TableName>
        <TableDescription>...</TableDescription>
        <KeyWord>...</KeyWord>
      </ContentClassification>
      <Table>                                  <!-- one or several -->
        <MetaData>
          <ScalingFactor>0</ScalingFactor>     <!-- values are q x 10^ScalingFactor -->
          <TableDescription>... Female Smoker ...</TableDescription>
          <AxisDef id="Age"><ScaleType tc="3">Age</ScaleType>...</AxisDef>
        </MetaData>
        <Values><Axis><Y t="18">0.00045</Y><Y t="19">0.00047</Y>...</Axis></Values>
      </Table>
    </XTbML>

What we take, and how each table is labelled:

- Only one-axis (ultimate, by age) tables are read. Two-axis select tables (age x
  duration) are skipped: a select-and-ultimate file rates on its ultimate table. A
  file with no ultimate table is refused.
- A table's sex and smoker status come from words in its own
  `MetaData/TableDescription` and, for whatever that leaves open, from the file's
  `ContentClassification` (`TableName`, `TableDescription`, `KeyWord`s): "male",
  "female"; "smoker"/"tobacco" or "nonsmoker"/"non-smoker"/"non-tobacco". Neither
  word, or both, means the table is for either. So one file can carry the four tables
  of a basis, each described as, say, "Female Nonsmoker". Two tables with the same
  label are refused. (A JSON upload can also wrap several SOA files and say each
  one's sex and smoker status outright: see `plugins.premium_life.upload`.)
- Rates must be numbers between 0 and 1 (after the scaling factor) at contiguous
  ages; empty `<Y>` cells before the first and after the last rate are allowed (SOA
  files pad with them), a gap in the middle is not.

Every problem is a `Refusal` naming the entry (`Table[2].Y[t=47]`). Documents with a
DOCTYPE are refused outright: XTbML has none, and entities are how XML bombs work.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from core.hookspecs import Refusal

MAX_BYTES = 5_000_000
_WORD_SEX = {"female": re.compile(r"\bfemales?\b"), "male": re.compile(r"\bmales?\b")}
_SMOKING = re.compile(r"\b(non[\s-]?)?(?:smok|tobacco)")


@dataclass(frozen=True)
class XTbMLTable:
    position: int
    name: str
    sex: str | None
    smoker: bool | None
    first_age: int
    q: tuple[Decimal, ...]

    def as_mortality(self) -> dict[str, Any]:
        """The table as a `mortality` entry of a rate table (see `basis`)."""
        return {
            "sex": self.sex,
            "smoker": self.smoker,
            "name": self.name,
            "law": "table",
            "first_age": self.first_age,
            "q": list(self.q),
        }


@dataclass(frozen=True)
class XTbMLFile:
    identity: str | None
    name: str
    tables: tuple[XTbMLTable, ...]


def sex_in(text: str) -> str | None:
    found = [sex for sex, word in _WORD_SEX.items() if word.search(text.lower())]
    return found[0] if len(found) == 1 else None


def smoker_in(text: str) -> bool | None:
    found = {match.group(1) is None for match in _SMOKING.finditer(text.lower())}
    return found.pop() if len(found) == 1 else None


def _local(tag: str) -> str:
    # SOA files carry no namespace, but a tool may add one: match on local names.
    return tag.rsplit("}", 1)[-1]


def _children(element: ET.Element | None, name: str) -> list[ET.Element]:
    if element is None:
        return []
    return [child for child in element if _local(child.tag) == name]


def _child(element: ET.Element | None, name: str) -> ET.Element | None:
    found = _children(element, name)
    return found[0] if found else None


def _text(element: ET.Element | None, name: str) -> str:
    child = _child(element, name)
    return (child.text or "").strip() if child is not None else ""


class _Refusals:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.errors: dict[str, str] = {}

    def key(self, where: str) -> str:
        if not self.prefix:
            return where or "file"
        return f"{self.prefix}.{where}" if where else self.prefix

    def add(self, where: str, reason: str) -> None:
        self.errors.setdefault(self.key(where), reason)

    def refuse(self, where: str, reason: str) -> Refusal:
        return Refusal("the XTbML file is not valid", errors={self.key(where): reason})


def parse_xtbml(content: bytes, prefix: str = "") -> XTbMLFile:
    """The ultimate tables of one XTbML document, labelled; `Refusal` naming the bad
    entry, its key under `prefix` when the document sits inside another upload."""
    refusals = _Refusals(prefix)
    if len(content) > MAX_BYTES:
        raise refusals.refuse("", f"is larger than {MAX_BYTES // 1_000_000} MB")
    if b"<!doctype" in content[:4096].lower() or b"<!entity" in content.lower():
        raise refusals.refuse("", "must not declare a DOCTYPE or entities")
    try:
        root = ET.fromstring(content)
    except ET.ParseError as exc:
        raise refusals.refuse("", f"is not well-formed XML ({exc})") from None
    if _local(root.tag) != "XTbML":
        raise refusals.refuse("", f"is not an XTbML document (its root is <{_local(root.tag)}>)")

    classification = _child(root, "ContentClassification")
    name = (
        _text(classification, "TableName")
        or _text(classification, "TableDescription")
        or "XTbML table"
    )
    identity = _text(classification, "TableIdentity") or None
    words = " ".join(
        [
            _text(classification, "TableName"),
            _text(classification, "TableDescription"),
            *((k.text or "") for k in _children(classification, "KeyWord")),
        ]
    )
    file_sex, file_smoker = sex_in(words), smoker_in(words)

    tables = _children(root, "Table")
    if not tables:
        raise refusals.refuse("", "has no <Table>")
    found: list[XTbMLTable] = []
    labels: dict[tuple[str | None, bool | None], int] = {}
    for position, table in enumerate(tables, start=1):
        parsed = _read_table(table, position, refusals)
        if parsed is None:
            continue
        first_age, rates, description = parsed
        sex = sex_in(description) or file_sex
        smoker = smoker_in(description)
        if smoker is None:
            smoker = file_smoker
        where = f"Table[{position}]"
        if (sex, smoker) in labels:
            refusals.add(
                where,
                f"a second table for {_who(sex, smoker)} (Table[{labels[(sex, smoker)]}] "
                "is one); say each table's sex and smoker status in its TableDescription",
            )
            continue
        labels[(sex, smoker)] = position
        label = description or name
        found.append(XTbMLTable(position, label, sex, smoker, first_age, tuple(rates)))
    if refusals.errors:
        raise Refusal("the XTbML file is not valid", errors=refusals.errors)
    if not found:
        raise refusals.refuse("", "has no ultimate (one-axis, by age) table")
    return XTbMLFile(identity, name, tuple(found))


def _who(sex: str | None, smoker: bool | None) -> str:
    status = {None: "", True: " smokers", False: " non-smokers"}[smoker]
    return f"{sex or 'either sex'}{status}"


def _read_table(
    table: ET.Element, position: int, refusals: _Refusals
) -> tuple[int, list[Decimal], str] | None:
    """(first age, rates, description) of a one-axis table; None for a select table
    or a bad one (the reasons in `refusals`)."""
    where = f"Table[{position}]"
    metadata = _child(table, "MetaData")
    description = _text(metadata, "TableDescription")
    axes = _children(_child(table, "Values"), "Axis")
    if len(axes) > 1 or (axes and _children(axes[0], "Axis")):
        return None  # a select table: age x duration
    if not axes or not _children(axes[0], "Y"):
        refusals.add(where, "has no <Values><Axis><Y> rates")
        return None
    axis_defs = _children(metadata, "AxisDef")
    if axis_defs:
        scale = _text(axis_defs[0], "ScaleType") or _text(axis_defs[0], "AxisName")
        if scale and scale.lower() != "age":
            refusals.add(where, f"its axis is {scale}, not age")
            return None
    scaling = _text(metadata, "ScalingFactor") or "0"
    if not re.fullmatch(r"-?\d{1,2}", scaling):
        refusals.add(f"{where}.ScalingFactor", "must be a whole number")
        return None

    cells: list[tuple[int, str]] = []
    for y in _children(axes[0], "Y"):
        t = (y.get("t") or "").strip()
        if not re.fullmatch(r"\d{1,3}", t):
            refusals.add(f"{where}.Y[t={t}]", "the age t must be a whole number")
            return None
        age = int(t)
        if cells and age != cells[-1][0] + 1:
            expected = cells[-1][0] + 1
            refusals.add(f"{where}.Y[t={t}]", f"ages must be contiguous; {expected} is missing")
            return None
        cells.append((age, (y.text or "").strip()))
    filled = [index for index, (_, text) in enumerate(cells) if text]
    if not filled:
        refusals.add(where, "has no rates")
        return None
    first, last = filled[0], filled[-1]
    rates: list[Decimal] = []
    for age, text in cells[first : last + 1]:
        cell = f"{where}.Y[t={age}]"
        if not text:
            refusals.add(cell, f"has no rate: ages must be contiguous ({age} is missing)")
            return None
        try:
            q = Decimal(text).scaleb(-int(scaling))
        except InvalidOperation:
            refusals.add(cell, f"{text!r} is not a number")
            continue
        if not q.is_finite() or not 0 <= q <= 1:
            refusals.add(cell, f"q at age {age} must be between 0 and 1")
            continue
        rates.append(q)
    if len(rates) != last - first + 1:
        return None
    return cells[first][0], rates, description
