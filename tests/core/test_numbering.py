"""Document numbers: patterns, periods, and no duplicate or gap under concurrency."""

from __future__ import annotations

import threading
from datetime import date

import pytest
from flask import Flask
from sqlalchemy import text

from core import numbering
from core.db import db
from core.tenancy import Tenant, tenant_context


@pytest.mark.parametrize(
    ("pattern", "seq", "on", "expected"),
    [
        ("POL-{yyyy}-{seq:06}", 42, date(2027, 3, 1), "POL-2027-000042"),
        ("P{yyyy}{mm}/{seq:04}", 7, date(2027, 11, 5), "P202711/0007"),
        ("CL-{seq}", 1234567, date(2027, 1, 1), "CL-1234567"),
        ("{seq:03}", 1234, date(2027, 1, 1), "1234"),  # padding is a minimum width
    ],
)
def test_render(pattern: str, seq: int, on: date, expected: str) -> None:
    assert numbering.render(numbering.check_pattern(pattern), seq, on) == expected


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("", "must be a pattern"),
        ("POL-{yyyy}", "exactly once"),
        ("{seq}-{seq}", "exactly once"),
        ("POL-{yy}-{seq}", "{yy} is not one of"),
        ("POL-{mm}-{seq}", "{mm} needs {yyyy}"),
        ("POL-{seq:6}", "{seq:6} is not one of"),
        ("POL-{seq}}", "unmatched"),
        ("X" * 61 + "{seq}", "at most 60"),
    ],
)
def test_bad_patterns_are_refused_with_a_reason(pattern: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        numbering.check_pattern(pattern)


def test_periods_follow_the_pattern() -> None:
    on = date(2027, 4, 9)
    assert numbering.period_of("POL-{yyyy}-{seq}", on) == "2027"
    assert numbering.period_of("P{yyyy}{mm}{seq}", on) == "2027-04"
    assert numbering.period_of("P{seq}", on) == "-"


def test_counter_restarts_each_year_and_kinds_are_separate(alpha_db: None) -> None:
    pattern = "POL-{yyyy}-{seq:06}"
    assert numbering.next_number("policy", pattern, date(2027, 1, 1)) == "POL-2027-000001"
    assert numbering.next_number("policy", pattern, date(2027, 12, 31)) == "POL-2027-000002"
    assert numbering.next_number("policy", pattern, date(2028, 1, 1)) == "POL-2028-000001"
    assert numbering.next_number("claim", "CL-{yyyy}-{seq}", date(2027, 5, 1)) == "CL-2027-1"


def test_concurrent_takers_get_distinct_numbers_without_gaps_and_rollback_returns_one(
    app: Flask, alpha: Tenant
) -> None:
    """Eight threads, each in its own transaction on its own connection, take numbers at
    once; one of them rolls back. The committed numbers are 1..N with no duplicate."""
    kind = "concurrency-test"
    taken: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)
    lock = threading.Lock()

    def take(index: int) -> None:
        try:
            with app.app_context(), tenant_context(alpha):
                start.wait()
                for _ in range(5):
                    number = numbering.next_number(kind, "N-{seq}", date(2027, 1, 1))
                    if index == 0:
                        db.session.rollback()  # gives its number back
                        continue
                    db.session.commit()
                    with lock:
                        taken.append(number)
                db.session.remove()
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert not errors
        assert len(taken) == 35
        assert sorted(int(n.removeprefix("N-")) for n in taken) == list(range(1, 36))
    finally:
        with app.app_context(), tenant_context(alpha):
            db.session.execute(text("DELETE FROM number_counters WHERE kind = :k"), {"k": kind})
            db.session.commit()
