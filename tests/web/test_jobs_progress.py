"""The progress component over a tenant's job row, at /jobs/<id>."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import update

from core import jobs
from core.db import db
from core.tenancy import Tenant, tenant_context
from tests.conftest import host_client
from tests.web.conftest import login


def set_job(app: Flask, tenant: Tenant, job_id: uuid.UUID, **values) -> None:
    with app.app_context(), tenant_context(tenant):
        db.session.execute(update(jobs.Job).where(jobs.Job.id == job_id).values(**values))
        db.session.commit()


@pytest.fixture
def alpha_job(app: Flask, alpha: Tenant) -> Iterator[uuid.UUID]:
    """A committed, running job of alpha's (the page reads it in its own request)."""
    job_id = uuid.uuid4()
    with app.app_context(), tenant_context(alpha):
        db.session.add(
            jobs.Job(
                id=job_id,
                type="customers_import",
                status=jobs.RUNNING,
                progress=20,
                total=50,
                message="Importing customers",
            )
        )
        db.session.commit()
    yield job_id
    with app.app_context(), tenant_context(alpha):
        db.session.execute(jobs.Job.__table__.delete().where(jobs.Job.id == job_id))
        db.session.commit()


def test_running_job_page_polls(alpha_admin, alpha_job: uuid.UUID) -> None:
    page = alpha_admin.get(f"/jobs/{alpha_job}")
    assert page.status_code == 200
    assert "<html" in page.text
    assert "Customers import" in page.text
    assert '<progress value="40" max="100"' in page.text
    assert "Importing customers" in page.text
    assert f'hx-get="/jobs/{alpha_job}/status"' in page.text
    assert 'hx-trigger="every 1s"' in page.text


def test_status_fragment_stops_polling_when_finished(
    app: Flask, alpha: Tenant, alpha_admin, alpha_job: uuid.UUID
) -> None:
    hx = {"HX-Request": "true"}
    running = alpha_admin.get(f"/jobs/{alpha_job}/status", headers=hx)
    assert "<html" not in running.text
    assert 'hx-trigger="every 1s"' in running.text

    set_job(app, alpha, alpha_job, status=jobs.FINISHED, progress=50, message="Imported 50")
    done = alpha_admin.get(f"/jobs/{alpha_job}/status", headers=hx)
    assert "hx-trigger" not in done.text
    assert '<progress value="100"' in done.text
    assert "Imported 50" in done.text

    set_job(app, alpha, alpha_job, status=jobs.FAILED, error="ValueError: row 7 has no name")
    failed = alpha_admin.get(f"/jobs/{alpha_job}/status", headers=hx)
    assert "hx-trigger" not in failed.text
    assert "row 7 has no name" in failed.text


def test_a_retry_keeps_polling_and_no_total_is_indeterminate(
    app: Flask, alpha: Tenant, alpha_admin, alpha_job: uuid.UUID
) -> None:
    set_job(app, alpha, alpha_job, status=jobs.QUEUED, total=None, message="Retrying")
    page = alpha_admin.get(f"/jobs/{alpha_job}/status", headers={"HX-Request": "true"})
    assert 'hx-trigger="every 1s"' in page.text
    assert '<progress aria-label="Progress"></progress>' in page.text


def test_job_page_needs_login(alpha_client, alpha_job: uuid.UUID) -> None:
    response = alpha_client.get(f"/jobs/{alpha_job}")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_another_tenants_job_is_not_found(app: Flask, beta, alpha_job: uuid.UUID) -> None:
    client = host_client(app, "beta")
    assert login(client, "admin@beta.example.com").status_code == 302
    assert client.get(f"/jobs/{alpha_job}").status_code == 404
    assert client.get(f"/jobs/{uuid.uuid4()}").status_code == 404
