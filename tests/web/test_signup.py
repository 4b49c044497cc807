"""Apex signup: validation (422, nothing written), then provisioning with progress,
the redirect to the new tenant's login, and that admin logging in."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import select, text

from core import jobs
from core.db import db
from tenants import registry
from tenants import signup as signups
from tenants.models import Signup
from tests.conftest import host_client, make_tenant
from tests.web.conftest import login

PASSWORD = "a long enough password"


def form(slug: str, **changes: str) -> dict[str, str]:
    data = {
        "name": f"{slug.title()} Brokers",
        "slug": slug,
        "admin_email": f"owner@{slug}.example.com",
        "password": PASSWORD,
        "password_confirm": PASSWORD,
    }
    return data | changes


def signup_count(app: Flask) -> int:
    with app.app_context(), db.engine.connect() as conn:
        return conn.scalar(text("SELECT count(*) FROM public.signups"))


def load(app: Flask, signup_id: uuid.UUID) -> Signup:
    with app.app_context():
        found = db.session.get(Signup, signup_id)
        assert found is not None
        db.session.expunge(found)
        return found


def run(app: Flask, signup_id: uuid.UUID) -> None:
    """What the worker does: the job, in an app context with no tenant."""
    with app.app_context():
        signups.run_signup(str(signup_id))


@pytest.fixture
def enqueued(monkeypatch) -> list[tuple]:
    """Record enqueue_platform calls instead of pushing them to Redis."""
    calls: list[tuple] = []
    monkeypatch.setattr(
        jobs, "enqueue_platform", lambda func, *args, **kw: calls.append((func, args))
    )
    return calls


def submit(apex_client, data: dict[str, str]) -> uuid.UUID:
    response = apex_client.post("/signup", data=data)
    assert response.status_code == 303, response.text
    match = re.fullmatch(r"/signup/([0-9a-f-]{36})", response.headers["Location"])
    assert match
    return uuid.UUID(match.group(1))


def test_signup_form_on_the_apex(apex_client) -> None:
    page = apex_client.get("/signup")
    assert page.status_code == 200
    for field in ("name", "slug", "admin_email", "password", "password_confirm"):
        assert f'name="{field}"' in page.text


def test_invalid_signup_is_422_with_every_field_error_and_writes_nothing(
    app: Flask, apex_client, enqueued
) -> None:
    before = signup_count(app)
    response = apex_client.post(
        "/signup",
        data=form(
            "pg-bad",
            name=" ",
            admin_email="not-an-email",
            password="short",
            password_confirm="other",
        ),
    )
    assert response.status_code == 422
    page = response.text
    for field in ("name", "slug", "admin_email", "password", "password_confirm"):
        assert f'id="{field}-errors"' in page, field
    assert "may not start with &#39;pg&#39;" in page
    assert "at least 12 characters" in page
    assert "The two passwords differ." in page
    assert 'value="not-an-email"' in page  # what was typed comes back...
    assert "short" not in page  # ...but never a password
    assert signup_count(app) == before
    assert enqueued == []


@pytest.mark.parametrize(
    ("slug", "message"),
    [
        ("admin", "is reserved"),
        ("alpha", "already taken"),
        ("9lives", "starting with a letter"),
        ("ab", "3-40 characters"),
        ("a--b", "may not end with"),
    ],
)
def test_slug_rules(app: Flask, apex_client, enqueued, alpha, slug: str, message: str) -> None:
    before = signup_count(app)
    response = apex_client.post("/signup", data=form(slug))
    assert response.status_code == 422
    assert message in response.text
    assert signup_count(app) == before
    assert enqueued == []


def test_a_pending_signup_holds_its_slug(app: Flask, apex_client, enqueued) -> None:
    first = submit(apex_client, form("hotel-brokers"))
    assert enqueued == [(signups.run_signup, (str(first),))]
    again = apex_client.post("/signup", data=form("hotel-brokers", admin_email="x@y.example.com"))
    assert again.status_code == 422
    assert "already taken" in again.text
    with app.app_context():
        rows = db.session.scalars(select(Signup).where(Signup.slug == "hotel-brokers")).all()
    assert len(rows) == 1


@pytest.fixture
def rq_queue(app: Flask) -> Iterator:
    """The default queue, emptied afterwards. (No app context is held open during the
    test: requests would then share its session.)"""
    with app.app_context():
        queue = jobs.queue("default")
    yield queue
    queue.empty()


def test_signup_provisions_with_progress_then_sends_to_login(
    app: Flask, apex_client, rq_queue, monkeypatch
) -> None:
    signup_id = submit(apex_client, form("delta-brokers") | {"slug": " Delta-Brokers "})

    # Queued for a worker, as a platform job carrying the id only.
    (queued,) = [j for j in rq_queue.jobs if j.args[1] == [str(signup_id)]]
    assert queued.args[0] == "tenants.signup.run_signup"

    stored = load(app, signup_id)
    assert stored.slug == "delta-brokers"
    assert stored.status == "queued"
    assert stored.password_hash and stored.password_hash.startswith("$argon2id$")
    assert PASSWORD not in stored.password_hash

    page = apex_client.get(f"/signup/{signup_id}")
    assert page.status_code == 200
    assert f'hx-get="/signup/{signup_id}/status"' in page.text
    assert 'hx-trigger="every 1s"' in page.text
    assert "<progress" in page.text

    waiting = apex_client.get(f"/signup/{signup_id}/status", headers={"HX-Request": "true"})
    assert waiting.status_code == 200
    assert "HX-Redirect" not in waiting.headers
    assert 'hx-trigger="every 1s"' in waiting.text
    assert "<html" not in waiting.text

    # Progress is visible to another connection while provisioning's transaction runs.
    seen: list[tuple] = []
    real_create = signups.create_tenant

    def observed_create(engine, new, *, progress, **kwargs):
        def observe(percent: int, message: str) -> None:
            progress(percent, message)
            with db.engine.connect() as conn:
                seen.append(
                    tuple(
                        conn.execute(
                            text("SELECT status, progress FROM public.signups WHERE id = :id"),
                            {"id": signup_id},
                        ).one()
                    )
                )

        return real_create(engine, new, progress=observe, **kwargs)

    monkeypatch.setattr(signups, "create_tenant", observed_create)
    run(app, signup_id)
    assert ("running", 10) in seen
    assert ("running", 40) in seen
    assert ("running", 70) in seen

    done = load(app, signup_id)
    assert (done.status, done.progress, done.error) == ("done", 100, None)
    assert done.password_hash is None
    assert done.finished_at is not None

    finished = apex_client.get(f"/signup/{signup_id}/status", headers={"HX-Request": "true"})
    assert finished.headers["HX-Redirect"] == "http://delta-brokers.localhost:5000/login"
    assert "hx-trigger" not in finished.text
    assert 'data-status="done"' in finished.text
    assert 'href="http://delta-brokers.localhost:5000/login"' in finished.text

    # The new brokerage's admin logs in on its own host, and is asked to set up
    # two-factor authentication before anything else (tests/security/test_mfa.py).
    client = host_client(app, "delta-brokers")
    logged_in = login(client, "owner@delta-brokers.example.com", PASSWORD)
    assert logged_in.status_code == 302
    assert logged_in.headers["Location"] == "/tf-setup"
    setup = client.get("/tf-setup")
    assert setup.status_code == 200
    assert "Delta-Brokers Brokers" in setup.text

    # Running the job again changes nothing.
    run(app, signup_id)
    assert load(app, signup_id).status == "done"
    with app.app_context():
        assert registry.by_slug(db.engine, "delta-brokers") is not None


def test_failed_provisioning_shows_the_error(app: Flask, apex_client, enqueued) -> None:
    signup_id = submit(apex_client, form("golf-brokers"))
    # Someone takes the slug between the signup and its job (say, from the CLI).
    make_tenant(app, "golf-brokers")
    run(app, signup_id)

    failed = load(app, signup_id)
    assert failed.status == "failed"
    assert "already exists" in (failed.error or "")
    assert failed.password_hash is None

    status = apex_client.get(f"/signup/{signup_id}/status", headers={"HX-Request": "true"})
    assert "HX-Redirect" not in status.headers
    assert "hx-trigger" not in status.text
    assert "already exists" in status.text
    assert 'role="alert"' in status.text

    run(app, signup_id)  # a permanent failure is not retried
    assert load(app, signup_id).error == failed.error


def test_unknown_signup_is_404(apex_client) -> None:
    assert apex_client.get(f"/signup/{uuid.uuid4()}").status_code == 404
    assert apex_client.get(f"/signup/{uuid.uuid4()}/status").status_code == 404
