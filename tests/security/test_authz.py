"""One authorization mechanism: declarations, default deny, 401 vs 403, audited denials,
and job types that declare the permission needed to enqueue them."""

from __future__ import annotations

from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask, g
from flask_login import login_user
from sqlalchemy import select

from core import jobs
from core.app import create_app
from core.audit import AuditEntry
from core.db import db
from core.security import authz
from core.security.models import Role, User
from core.tenancy import tenant_context
from tests.conftest import PASSWORD, host_client
from tests.security.conftest import audit_entries, last_audit_id, role_email, user_id

# --- declarations and default deny ---------------------------------------------------


def test_every_view_of_the_app_declares_who_may_call_it(app: Flask) -> None:
    allowed = frozenset(authz.security_endpoints(app))
    assert authz.undeclared_endpoints(app, allowed) == []
    # Only Flask-Security's own views are let through undecorated: they guard themselves.
    security = app.config["SECURITY_BLUEPRINT_NAME"] + "."
    assert allowed and all(endpoint.startswith(security) for endpoint in allowed)
    assert "static" not in allowed and authz.route_access(app, "static") == authz.PUBLIC


def test_an_undeclared_view_stops_the_app_from_starting(app: Flask, app_config: dict) -> None:
    components = ("tenants", "web", "tests.security.undeclared_views")
    with pytest.raises(RuntimeError, match=r"without a declared permission.*undeclared"):
        create_app({**app_config, "COMPONENTS": components})


def test_declarations_are_read_back(probe_app: Flask) -> None:
    assert authz.route_access(probe_app, "roles.update") == authz.Access(
        "permissions", ("settings:update",)
    )
    assert authz.route_access(probe_app, "probe.own_user") == authz.SIGNED_IN
    assert authz.route_access(probe_app, "health.healthz") == authz.PUBLIC
    assert authz.route_access(probe_app, "security.login") == authz.PUBLIC


def test_unknown_or_missing_permissions_are_refused_when_declared() -> None:
    with pytest.raises(ValueError, match="unknown permission"):
        authz.requires("customers:reed")
    with pytest.raises(ValueError, match="at least one"):
        authz.requires()
    with pytest.raises(ValueError, match="unknown permission"):
        authz.authorize("nope:nope", SimpleNamespace(is_authenticated=True, active=True))


def test_has_permission_needs_an_active_signed_in_holder() -> None:
    def principal(**kwargs: object) -> SimpleNamespace:
        values = {"is_authenticated": True, "active": True, "has_permission": lambda p: True}
        return SimpleNamespace(**(values | kwargs))

    assert authz.has_permission(principal(), "customers:read")
    assert not authz.has_permission(principal(active=False), "customers:read")
    assert not authz.has_permission(principal(is_authenticated=False), "customers:read")
    assert not authz.has_permission(principal(has_permission=lambda p: False), "customers:read")
    assert not authz.has_permission(None, "customers:read")


# --- 401 vs 403 --------------------------------------------------------------------


def test_anonymous_on_a_screen_is_sent_to_login_and_back(app: Flask, alpha) -> None:
    response = host_client(app, "alpha").get("/admin/roles?page=2")
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login"
    back = urlsplit(parse_qs(location.query)["next"][0])
    # Back to the same host: a path, or a URL naming alpha's host.
    assert back.hostname in (None, "alpha.localhost")
    assert (back.path, back.query) == ("/admin/roles", "page=2")


def test_missing_permission_is_a_403_page_and_is_audited(app: Flask, alpha, signed_in) -> None:
    since = last_audit_id(app, alpha)
    agent = signed_in("agent")
    response = agent.get("/admin/roles")
    assert response.status_code == 403
    assert response.mimetype == "text/html"
    assert "settings:read" in response.text

    (entry,) = audit_entries(app, alpha, "authz.denied", since)
    assert entry.details == {"permission": "settings:read", "endpoint": "roles.index"}
    assert entry.actor == f"user:{user_id(app, alpha, role_email('agent', 'alpha'))}"


def test_a_denial_is_kept_when_the_request_is_rolled_back(
    probe_app: Flask, alpha, role_users
) -> None:
    since = last_audit_id(probe_app, alpha)
    client = host_client(probe_app, "alpha")
    assert client.post("/login", data=_credentials("manager")).status_code == 302

    response = client.post("/probe/write-then-authorize")
    assert response.status_code == 403
    (entry,) = audit_entries(probe_app, alpha, "authz.denied", since)
    assert entry.details == {
        "permission": "settings:update",
        "endpoint": "probe.write_then_authorize",
    }
    with probe_app.app_context(), tenant_context(alpha):
        written = select(Role).where(Role.name == "written-before-denial")
        assert db.session.scalars(written).all() == []


def test_a_holder_gets_through(probe_app: Flask, alpha, role_users) -> None:
    client = host_client(probe_app, "alpha")
    assert client.post("/login", data=_credentials("admin")).status_code == 302
    assert client.post("/probe/write-then-authorize").status_code == 200
    with probe_app.app_context(), tenant_context(alpha):
        role = db.session.scalars(select(Role).where(Role.name == "written-before-denial")).one()
        db.session.delete(role)
        db.session.commit()


def test_anonymous_on_the_api_is_a_401_problem_with_a_bearer_challenge(app: Flask, alpha) -> None:
    guarded = [
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/")
        and "GET" in rule.methods
        and not rule.arguments
        and authz.route_access(app, rule.endpoint) != authz.PUBLIC
    ]
    assert guarded, "no guarded API endpoint to try"
    for path in guarded:
        response = host_client(app, "alpha").get(path)
        assert response.status_code == 401, path
        assert response.mimetype == "application/problem+json", path
        assert response.headers["WWW-Authenticate"].startswith("Bearer"), path
        assert response.json["status"] == 401


def test_the_api_answers_401_and_403_as_problems(probe_app: Flask, alpha, role_users) -> None:
    anonymous = host_client(probe_app, "alpha").get("/api/probe/exports")
    assert anonymous.status_code == 401
    assert anonymous.mimetype == "application/problem+json"
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"

    since = last_audit_id(probe_app, alpha)
    agent = host_client(probe_app, "alpha")
    assert agent.post("/login", data=_credentials("agent")).status_code == 302
    denied = agent.get("/api/probe/exports")
    assert denied.status_code == 403
    assert denied.mimetype == "application/problem+json"
    assert denied.json["detail"] == "This needs the permission reports:export."
    (entry,) = audit_entries(probe_app, alpha, "authz.denied", since)
    assert entry.details == {"permission": "reports:export", "endpoint": "probe_api.exports"}

    manager = host_client(probe_app, "alpha")
    assert manager.post("/login", data=_credentials("manager")).status_code == 302
    assert manager.get("/api/probe/exports").json == {"exports": []}


# --- jobs ----------------------------------------------------------------------------


@pytest.fixture
def export_job_type(monkeypatch: pytest.MonkeyPatch) -> str:
    name = "authz_test.export"

    def export(ctx: jobs.JobContext) -> None:
        return None

    monkeypatch.setitem(jobs.JOB_TYPES, name, export)
    monkeypatch.setitem(jobs.JOB_PERMISSIONS, name, "reports:export")
    return name


def test_a_job_type_declares_a_known_permission(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "JOB_TYPES", {})
    monkeypatch.setattr(jobs, "JOB_PERMISSIONS", {})
    with pytest.raises(ValueError, match="unknown permissions"):
        jobs.register_job_type("authz_test.typo", lambda ctx: None, "reports:exprt")
    assert "authz_test.typo" not in jobs.JOB_TYPES

    @jobs.job_type("authz_test.declared", permission="reports:export")
    def declared(ctx: jobs.JobContext) -> None:
        return None

    assert jobs.JOB_PERMISSIONS == {"authz_test.declared": "reports:export"}


def _enqueue_as(app: Flask, email: str | None, job_type: str) -> jobs.Job:
    # A path no view answers: the denial names no endpoint, as from a job's code.
    with app.test_request_context("/reports/run", base_url="http://alpha.localhost:5000"):
        # The test's app context outlives this request: forget the last one's user.
        g.pop("_login_user", None)
        if email is not None:
            user = db.session.scalars(select(User).where(User.email == email)).one()
            login_user(user)
        return jobs.enqueue(job_type, created_by=email)


def test_enqueueing_needs_the_job_types_permission(
    app: Flask, alpha, alpha_db, role_users, export_job_type: str
) -> None:
    since = last_audit_id(app, alpha)
    with pytest.raises(authz.Denied) as denied:
        _enqueue_as(app, role_email("agent", "alpha"), export_job_type)
    assert denied.value.permission == "reports:export"
    assert db.session.scalars(select(jobs.Job).where(jobs.Job.type == export_job_type)).all() == []
    with pytest.raises(authz.Denied):
        _enqueue_as(app, None, export_job_type)  # a request with nobody signed in

    manager = role_email("manager", "alpha")
    job = _enqueue_as(app, manager, export_job_type)
    assert (job.type, job.created_by) == (export_job_type, manager)
    # The system (scheduler, CLI, other jobs) enqueues with no request and no user.
    assert jobs.enqueue(export_job_type, created_by="scheduler").status == jobs.QUEUED

    # The rolled-back test transaction still saw the agent's denial written on its own.
    denials = [
        entry.details
        for entry in db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "authz.denied", AuditEntry.id > since)
        )
    ]
    assert denials == [{"permission": "reports:export", "endpoint": None}]


def _credentials(role: str, slug: str = "alpha") -> dict[str, str]:
    return {"email": role_email(role, slug), "password": PASSWORD}
