"""Bulk import: upload, mapping, the chunked job, the refused-rows download, re-runs,
who may import, and tenant isolation of uploads and imports."""

from __future__ import annotations

import csv
import io
import re
import uuid

import pytest
from flask import Flask
from sqlalchemy import func, select

from core import jobs
from core.customers import imports
from core.customers.models import Customer
from core.db import db
from core.security.pii import blind_match
from core.tenancy import Tenant, tenant_context
from tests.conftest import HostClient
from tests.core.jobs_support import drain
from tests.customers.conftest import digits, word
from tests.security.conftest import sign_in
from tests.security.test_tokens import make_user


@pytest.fixture(scope="module")
def manager_client(app: Flask, alpha: Tenant) -> HostClient:
    return sign_in(app, alpha.slug, make_user(app, alpha, ("manager",)).email)


def _file() -> tuple[bytes, dict[str, str]]:
    """Three good rows (one a company), three bad ones; returns the file and the good
    rows' emails by surname."""
    people = [(word(), word()) for _ in range(3)]
    lines = [["Given name", "Surname", "DOB", "E-mail", "SSN", "Company", "Shoe size"]]
    lines.append([*people[0], "1980-02-03", f"{people[0][0]}@example.com", digits(9), "", "42"])
    lines.append([*people[1], "", f"{people[1][0]}@example.com", "", "", "41"])
    lines.append(["", "", "", f"{people[2][0]}@example.com", "", f"{people[2][1]} Ltd", ""])
    lines.append([word(), "", "1980-01-01", "", "", "", ""])  # line 5: no last name
    lines.append([word(), word(), "3000-01-01", "not-an-email", "", "", ""])  # line 6: two
    lines.append([word(), word(), "", "", "12", "", ""])  # line 7: national id too short
    out = io.StringIO()
    csv.writer(out).writerows(lines)
    emails = {  # stored lower-cased
        people[0][1]: lines[1][3].lower(),
        people[1][1]: lines[2][3].lower(),
        "company": lines[3][3].lower(),
    }
    return out.getvalue().encode(), emails


def _upload(client: HostClient, data: bytes) -> str:
    response = client.post("/customers/import", data={"file": (io.BytesIO(data), "people.csv")})
    assert response.status_code == 303, response.text
    return response.headers["Location"].rsplit("/", 1)[1]


def _run(app: Flask, client: HostClient, upload_id: str) -> tuple[str, dict]:
    page = client.get(f"/customers/import/{upload_id}")
    assert page.status_code == 200
    html = page.text
    # The guessed mapping is what the form proposes; the unknown column is ignored.
    for field in ("first_name", "last_name", "date_of_birth", "email", "national_id"):
        assert f'value="{field}" selected' in html
    assert len(re.findall(r" selected", html)) == 6
    form = {
        f"map-{index}": field
        for index, field in enumerate(
            ["first_name", "last_name", "date_of_birth", "email", "national_id", "company_name", ""]
        )
    }
    response = client.post(f"/customers/import/{upload_id}", data=form)
    assert response.status_code == 303, response.text
    job_url = response.headers["Location"]
    assert 'hx-trigger="every 1s"' in client.get(job_url).text  # queued: the page polls
    drain(app, "bulk")
    job_id = job_url.rsplit("/", 1)[1]
    return job_url, {"id": job_id}


def test_import_counts_errors_download_and_rerun(
    app: Flask, alpha: Tenant, manager_client: HostClient
) -> None:
    data, emails = _file()
    upload_id = _upload(manager_client, data)
    job_url, job = _run(app, manager_client, upload_id)
    with app.app_context(), tenant_context(alpha):
        row = jobs.get_job(job["id"])
        assert row.status == jobs.FINISHED, row.error
        result = row.result
        assert row.progress == row.total == 6
        for email in emails.values():
            assert db.session.scalar(select(func.count()).where(Customer.email == email)) == 1
        company = db.session.scalars(select(Customer).where(Customer.email == emails["company"]))
        assert company.one().kind == "company"
        first = db.session.scalars(
            select(Customer).where(Customer.email == emails[next(iter(emails))])
        ).one()
        # Encrypted on the bulk path too, with a working blind index.
        assert first.date_of_birth == "1980-02-03"
        found = db.session.scalars(
            select(Customer.id).where(blind_match(Customer.national_id, first.national_id))
        )
        assert list(found) == [first.id]
        assert first.created_by is not None
    assert (result["total"], result["created"], result["skipped"], result["failed"]) == (6, 3, 0, 3)
    assert {(e["line"], e["field"]) for e in result["errors"]} == {
        (5, "last_name"),
        (6, "date_of_birth"),
        (6, "email"),
        (7, "national_id"),
    }
    reasons = {(e["line"], e["field"]): e["reason"] for e in result["errors"]}
    assert reasons[(6, "date_of_birth")] == "Must not be in the future."
    assert reasons[(6, "email")] == "Must be an email address."

    page = manager_client.get(job_url)
    assert "3 created, 0 already on file, 3 refused (of 6 rows)" in page.text
    assert 'hx-trigger="every 1s"' not in page.text  # finished: polling stops

    download = manager_client.get(f"{job_url}/errors.csv")
    assert download.status_code == 200
    assert download.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(download.text)))
    original = list(csv.reader(io.StringIO(data.decode())))
    assert rows[0] == [*original[0], "error"]
    assert [r[:-1] for r in rows[1:]] == original[4:7]
    assert (
        rows[2][-1] == "date_of_birth: Must not be in the future.; email: Must be an email address."
    )

    # The same file again (as a retried job would re-read it): nothing new.
    _, again = _run(app, manager_client, _upload(manager_client, data))
    with app.app_context(), tenant_context(alpha):
        rerun = jobs.get_job(again["id"]).result
        for email in emails.values():
            assert db.session.scalar(select(func.count()).where(Customer.email == email)) == 1
    assert (rerun["created"], rerun["skipped"], rerun["failed"]) == (0, 3, 3)


def test_duplicates_inside_one_file_are_created_once(
    app: Flask, alpha: Tenant, manager_client: HostClient
) -> None:
    first, last = word(), word()
    text = (
        "first_name,last_name,date_of_birth,email\n"
        f"{first},{last},1970-05-06,{first}@example.com\n"
        f"{first.upper()},{last},1970-05-06,other.{first}@example.com\n"
    )
    upload_id = _upload(manager_client, text.encode())
    _, job = _run_all_mapped(app, manager_client, upload_id)
    with app.app_context(), tenant_context(alpha):
        result = jobs.get_job(job).result
        names = select(func.count()).where(func.lower(Customer.first_name) == first.lower())
        assert db.session.scalar(names) == 1
    assert (result["created"], result["skipped"]) == (1, 1)


def _run_all_mapped(app: Flask, client: HostClient, upload_id: str) -> tuple[str, str]:
    form = {
        f"map-{i}": f for i, f in enumerate(["first_name", "last_name", "date_of_birth", "email"])
    }
    response = client.post(f"/customers/import/{upload_id}", data=form)
    assert response.status_code == 303, response.text
    drain(app, "bulk")
    return response.headers["Location"], response.headers["Location"].rsplit("/", 1)[1]


def test_bad_file_and_bad_mapping_are_refused(
    app: Flask, alpha: Tenant, manager_client: HostClient
) -> None:
    response = manager_client.post(
        "/customers/import", data={"file": (io.BytesIO(b"\xff\xfe\x00"), "x.csv")}
    )
    assert response.status_code == 422
    assert "Must be a CSV file in UTF-8 or an Excel workbook (.xlsx)." in response.text
    upload_id = _upload(manager_client, b"a,b\n1,2\n")
    response = manager_client.post(
        f"/customers/import/{upload_id}", data={"map-0": "email", "map-1": "email"}
    )
    assert response.status_code == 422
    assert "Chosen for more than one column." in response.text
    with app.app_context(), tenant_context(alpha):
        queued = select(func.count()).where(
            jobs.Job.type == imports.JOB_TYPE, jobs.Job.payload["upload_id"].astext == upload_id
        )
        assert db.session.scalar(queued) == 0


def test_customer_role_is_refused(app: Flask, alpha: Tenant) -> None:
    client = sign_in(app, alpha.slug, make_user(app, alpha, ("customer",)).email)
    assert client.get("/customers/import").status_code == 403
    response = client.post("/customers/import", data={"file": (io.BytesIO(b"a\n1\n"), "x.csv")})
    assert response.status_code == 403


def test_uploads_and_imports_stay_in_their_tenant(
    app: Flask, alpha: Tenant, beta: Tenant, manager_client: HostClient
) -> None:
    data, _ = _file()
    upload_id = _upload(manager_client, data)
    job_url, _ = _run(app, manager_client, upload_id)
    beta_client = sign_in(app, beta.slug, make_user(app, beta, ("manager",)).email)
    assert beta_client.get(f"/customers/import/{upload_id}").status_code == 404
    assert (
        beta_client.post(f"/customers/import/{upload_id}", data={"map-0": "email"}).status_code
        == 404
    )
    assert beta_client.get(job_url).status_code == 404
    assert beta_client.get(f"{job_url}/errors.csv").status_code == 404
    assert manager_client.get(f"/customers/import/{uuid.uuid4()}").status_code == 404
