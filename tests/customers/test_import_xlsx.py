"""Bulk import from an Excel workbook: the same mapping screen, job and error report as
a CSV file; dates and numbers typed as such; line numbers are the sheet's rows; a
re-run creates nothing; after the import only the refused rows are kept on disk. And
the menu leads to the import screen."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime
from pathlib import Path

import pytest
from flask import Flask
from openpyxl import Workbook
from sqlalchemy import func, select

from core import jobs
from core.customers import imports
from core.customers.models import Customer
from core.db import db
from core.tenancy import Tenant, tenant_context
from tests.conftest import HostClient
from tests.core.jobs_support import drain
from tests.customers.conftest import digits, word
from tests.security.conftest import sign_in
from tests.security.test_tokens import make_user

HEADER = ["First name", "Surname", "Date of birth", "Email", "Mobile", "Notes", "Shoe size"]


@pytest.fixture(scope="module")
def manager_client(app: Flask, alpha: Tenant) -> HostClient:
    return sign_in(app, alpha.slug, make_user(app, alpha, ("manager",)).email)


def _workbook(rows: list[list[object]], *, first_sheet: str = "People") -> bytes:
    """A workbook whose first sheet holds `rows` ([] leaves a sheet row blank), and a
    second sheet that must be ignored."""
    book = Workbook()
    sheet = book.active
    sheet.title = first_sheet
    for number, row in enumerate(rows, 1):
        for column, value in enumerate(row, 1):
            sheet.cell(row=number, column=column, value=value)
    other = book.create_sheet("Ignored")
    other.append(["email"])
    other.append(["someone.else@example.com"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _people() -> tuple[list[list[object]], dict[str, str]]:
    """Sheet rows: three good people (dates and a phone typed as Excel values), a blank
    row, three bad ones. Returns the rows and the good people's emails by surname."""
    good = [(word(), word()) for _ in range(3)]
    rows: list[list[object]] = [HEADER]
    rows.append(
        [
            *good[0],
            datetime(1980, 2, 3),
            f"{good[0][0]}@Example.com",
            447700900000 + int(digits(3)),
            "vip",
            42,
        ]
    )
    rows.append([*good[1], date(1975, 12, 31), f"{good[1][0]}@example.com", None, None, 41.0])
    rows.append([*good[2], "1990-06-07", f"{good[2][0]}@example.com", "+44 20 7946 0001"])
    rows.append([])  # row 5: blank, neither imported nor refused
    rows.append([word(), None, "1980-01-01"])  # row 6: no surname
    rows.append([word(), word(), datetime(2999, 1, 1), "not-an-email"])  # row 7: two errors
    rows.append([word(), word(), None, None, "12"])  # row 8: phone too short
    emails = {last: f"{first}@example.com".lower() for first, last in good}
    return rows, emails


def _upload(client: HostClient, data: bytes, name: str = "people.xlsx") -> str:
    response = client.post("/customers/import", data={"file": (io.BytesIO(data), name)})
    assert response.status_code == 303, response.text
    return response.headers["Location"].rsplit("/", 1)[1]


def _import(app: Flask, tenant: Tenant, client: HostClient, upload_id: str) -> tuple[str, jobs.Job]:
    page = client.get(f"/customers/import/{upload_id}")
    assert page.status_code == 200
    # The same mapping screen, guessing from the sheet's header row.
    for column, field in zip(HEADER, imports.guess_mapping(HEADER).values(), strict=True):
        assert f">{column}<" in page.text
        if field:
            assert f'value="{field}" selected' in page.text
    assert len(re.findall(r" selected", page.text)) == 6  # all but the shoe size
    form = {
        f"map-{i}": field
        for i, field in enumerate(
            ["first_name", "last_name", "date_of_birth", "email", "phone", "notes", ""]
        )
    }
    response = client.post(f"/customers/import/{upload_id}", data=form)
    assert response.status_code == 303, response.text
    drain(app, "bulk")
    job_url = response.headers["Location"]
    with app.app_context(), tenant_context(tenant):
        job = jobs.get_job(job_url.rsplit("/", 1)[1])
        db.session.expunge(job)
    return job_url, job


def test_a_workbook_imports_like_a_csv_file(
    app: Flask, alpha: Tenant, manager_client: HostClient
) -> None:
    rows, emails = _people()
    data = _workbook(rows)
    upload_id = _upload(manager_client, data)
    job_url, job = _import(app, alpha, manager_client, upload_id)

    assert job.status == jobs.FINISHED, job.error
    result = job.result
    assert (result["total"], result["created"], result["skipped"], result["failed"]) == (6, 3, 0, 3)
    # Lines are the sheet's row numbers, the blank row 5 included.
    assert {(e["line"], e["field"]) for e in result["errors"]} == {
        (6, "last_name"),
        (7, "date_of_birth"),
        (7, "email"),
        (8, "phone"),
    }
    with app.app_context(), tenant_context(alpha):
        imported = {
            c.last_name: c
            for c in db.session.scalars(select(Customer).where(Customer.email.in_(emails.values())))
        }
        assert sorted(imported) == sorted(emails)
        first, second, third = (imported[last] for last in emails)
        # A date cell (a date-time at midnight in Excel) is a date; a number is digits.
        assert (first.date_of_birth, second.date_of_birth) == ("1980-02-03", "1975-12-31")
        assert first.phone == str(rows[1][4]) and first.notes == "vip"
        assert third.phone == "+442079460001" and third.date_of_birth == "1990-06-07"
        assert first.email == emails[first.last_name]  # lower-cased, as a CSV row would be

    page = manager_client.get(job_url)
    assert "3 created, 0 already on file, 3 refused (of 6 rows)" in page.text
    download = manager_client.get(f"{job_url}/errors.csv")
    assert (download.status_code, download.mimetype) == (200, "text/csv")
    report = list(csv.reader(io.StringIO(download.text)))
    assert report[0] == [*HEADER, "error"]
    assert [r[0] for r in report[1:]] == [rows[5][0], rows[6][0], rows[7][0]]
    assert report[2][2] == "2999-01-01" and report[3][4] == "12"
    assert report[2][-1] == (
        "date_of_birth: Must not be in the future.; email: Must be an email address."
    )

    # Once imported, the upload is gone; only the refused rows are kept, to be fixed.
    folder = Path(app.config["INSTANCE_PATH"]) / "uploads" / alpha.slug
    assert not (folder / f"{upload_id}.csv").exists()
    kept = (folder / f"{upload_id}.refused.csv").read_text()
    assert all(email not in kept.lower() for email in emails.values())
    assert manager_client.get(f"/customers/import/{upload_id}").status_code == 404

    # The same workbook again: nothing new, the same rows refused.
    _, again = _import(app, alpha, manager_client, _upload(manager_client, data))
    assert (again.result["created"], again.result["skipped"], again.result["failed"]) == (0, 3, 3)
    with app.app_context(), tenant_context(alpha):
        count = select(func.count()).where(Customer.email.in_(emails.values()))
        assert db.session.scalar(count) == 3


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"PK\x03\x04 not really a zip", "people.xlsx", imports.NOT_READABLE),
        (b"\xd0\xcf\x11\xe0 an old .xls", "people.xls", imports.NOT_READABLE),
        (None, "people.xlsx", "Must have a header row and at least one data row."),
        ("dup", "people.xlsx", "Column names must be unique."),
    ],
)
def test_a_bad_workbook_is_422_and_kept_nowhere(
    app: Flask, alpha: Tenant, manager_client: HostClient, data: object, name: str, message: str
) -> None:
    if data is None:
        data = _workbook([HEADER])  # a header and no data row
    elif data == "dup":
        data = _workbook([["email", "email"], ["a@example.com", "b@example.com"]])
    folder = Path(app.config["INSTANCE_PATH"]) / "uploads" / alpha.slug
    before = set(folder.glob("*.csv")) if folder.exists() else set()
    response = manager_client.post("/customers/import", data={"file": (io.BytesIO(data), name)})
    assert response.status_code == 422
    assert message in response.text and 'aria-invalid="true"' in response.text
    assert (set(folder.glob("*.csv")) if folder.exists() else set()) == before


def test_a_workbook_with_an_unnamed_file_is_still_recognised(
    app: Flask, alpha: Tenant, manager_client: HostClient
) -> None:
    # Browsers may send no useful name; the content says it is a workbook.
    upload_id = _upload(manager_client, _workbook([["Email"], ["x@example.com"]]), "upload")
    assert imports.guess_mapping(["Email"]) == {"Email": "email"}
    with app.app_context(), tenant_context(alpha):
        assert imports.headers(upload_id) == ["Email"]


def test_the_menu_leads_to_the_import_screen_for_who_may_import(
    app: Flask, alpha: Tenant, manager_client: HostClient
) -> None:
    link = 'href="/customers/import"'
    assert link in manager_client.get("/").text
    agent = sign_in(app, alpha.slug, make_user(app, alpha, ("agent",)).email)
    assert link in agent.get("/").text  # agents import into their own book
    customer = sign_in(app, alpha.slug, make_user(app, alpha, ("customer",)).email)
    assert link not in customer.get("/").text
    assert customer.get("/customers/import").status_code == 403
