"""Document numbers (policies now; claims and invoices later) from per-tenant counters.

A pattern such as `POL-{yyyy}-{seq:06}` names the parts of a number: `{yyyy}` the
year, `{mm}` the month, `{seq}` or `{seq:0N}` the counter, zero-padded to N digits.
The counter restarts with each period the pattern shows: a pattern with `{yyyy}`
counts from 1 every year, one with `{yyyy}` and `{mm}` every month, one with neither
never restarts.

Counters are rows of `number_counters`, bumped by one `INSERT ... ON CONFLICT DO
UPDATE ... RETURNING`. The row stays locked until the transaction ends, so two
concurrent issues wait for each other instead of taking the same number, and a
rolled-back transaction gives its number back: the sequence has no gaps (invoice
numbers must be gapless), at the price of serialising issues of one kind.
"""

from __future__ import annotations

import re
from datetime import date

from sqlalchemy import BigInteger, String, text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, db

_TOKEN = re.compile(r"\{([^{}]*)\}")
_SEQ = re.compile(r"seq(?::0([1-9]|1[0-2]))?")
PATTERN_MAX = 60


class NumberCounter(Base):
    """The last number taken for one kind of document in one period."""

    __tablename__ = "number_counters"

    kind: Mapped[str] = mapped_column(String(30), primary_key=True)
    period: Mapped[str] = mapped_column(String(10), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


def check_pattern(pattern: str) -> str:
    """The pattern if usable, else ValueError saying why (for settings and forms)."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise ValueError("must be a pattern such as POL-{yyyy}-{seq:06}")
    pattern = pattern.strip()
    if len(pattern) > PATTERN_MAX:
        raise ValueError(f"must be at most {PATTERN_MAX} characters")
    tokens = _TOKEN.findall(pattern)
    seqs = [t for t in tokens if t.startswith("seq")]
    if len(seqs) != 1:
        raise ValueError("must contain {seq} (or {seq:06}) exactly once")
    for token in tokens:
        if token not in ("yyyy", "mm") and not _SEQ.fullmatch(token):
            raise ValueError(f"{{{token}}} is not one of {{yyyy}}, {{mm}}, {{seq}}, {{seq:0N}}")
    if "{mm}" in pattern and "{yyyy}" not in pattern:
        raise ValueError("{mm} needs {yyyy} too, or numbers would repeat every year")
    if _TOKEN.sub("", pattern).count("{") or _TOKEN.sub("", pattern).count("}"):
        raise ValueError("has an unmatched { or }")
    return pattern


def period_of(pattern: str, on: date) -> str:
    """The counter period the pattern implies for a number taken on `on`."""
    if "{mm}" in pattern:
        return f"{on.year:04d}-{on.month:02d}"
    if "{yyyy}" in pattern:
        return f"{on.year:04d}"
    return "-"


def render(pattern: str, seq: int, on: date) -> str:
    def part(match: re.Match[str]) -> str:
        token = match.group(1)
        if token == "yyyy":
            return f"{on.year:04d}"
        if token == "mm":
            return f"{on.month:02d}"
        width = _SEQ.fullmatch(token).group(1)  # type: ignore[union-attr]
        return f"{seq:0{width}d}" if width else str(seq)

    return _TOKEN.sub(part, pattern)


def next_number(kind: str, pattern: str, on: date) -> str:
    """Take the next number of `kind` in the current tenant transaction."""
    period = period_of(check_pattern(pattern), on)
    seq = db.session.execute(
        text(
            "INSERT INTO number_counters (kind, period, value) VALUES (:kind, :period, 1) "
            "ON CONFLICT (kind, period) DO UPDATE SET value = number_counters.value + 1 "
            "RETURNING value"
        ),
        {"kind": kind, "period": period},
    ).scalar_one()
    return render(pattern, seq, on)
