"""The authorization matrix, generated from the route registry.

Every route in app.url_map (but the few excluded below, each with its reason) is called
by each default role's user in three ways:

- own tenant: the user signed in on their tenant's host (a bearer token under /api);
- other tenant: the same role's user of beta, whose session cookie (or token) is sent
  to alpha's host, where it is not valid, so the call is anonymous;
- anonymous (once per route): nothing sent.

The expected outcome follows from what the route declares (core.security.authz) and
what the role grants in the database: a holder is let through (any status but 401/403
and the login redirect), a signed-in non-holder gets 403, and nobody signed in gets
the login redirect on screens or 401 under /api. Public routes never answer 401/403.

A route added without sample values for its URL parameters fails the matrix, so every
new route is covered by it the day it is added.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask import Flask
from sqlalchemy import select, text
from werkzeug.routing import Rule
from werkzeug.test import TestResponse

from core import jobs
from core.db import db
from core.security import authz, invitations, tokens
from core.security.models import Role, User
from core.tenancy import Tenant, tenant_context
from tenants.admin import admin_engine
from tests.conftest import PASSWORD, HostClient, host_client
from tests.security.conftest import ROLES, create_user, role_email, sign_in
from web import hosts

# Left out of the matrix, with the reason.
EXCLUDED = {
    "static": "our static files: public on every host, no tenant data (web/assets.py)",
    "security.static": "Flask-Security's own static files, public like ours",
}

MATRIX_ROLE = "matrix-probe"


@dataclass(frozen=True)
class Objects:
    """Rows the sample values point at, made once for the matrix."""

    signup_id: uuid.UUID
    job_id: uuid.UUID
    user_id: int
    invitation_id: int
    client_pk: int


# Flask-Security's links carry a signed token; a wrong one still shows who may ask.
BAD_TOKEN = "not-a-valid-token"


# Endpoint -> its URL values. Every endpoint with URL parameters needs an entry.
SAMPLES: dict[str, Callable[[Objects], dict[str, Any]]] = {
    "signup.show": lambda o: {"signup_id": o.signup_id},
    "signup.status": lambda o: {"signup_id": o.signup_id},
    "jobs.show": lambda o: {"job_id": o.job_id},
    "jobs.status": lambda o: {"job_id": o.job_id},
    "roles.show": lambda o: {"name": "manager"},
    # The throwaway role: an empty POST by a holder empties its permissions.
    "roles.update": lambda o: {"name": MATRIX_ROLE},
    # A built-in role: a holder's POST is refused (422) and nothing is deleted.
    "roles.delete": lambda o: {"name": "customer"},
    # A user made for the matrix: a holder's empty POSTs may change it, nobody else.
    "users.deactivate": lambda o: {"user_id": o.user_id},
    "users.set_roles": lambda o: {"user_id": o.user_id},
    "users.unlock": lambda o: {"user_id": o.user_id},
    "users.revoke": lambda o: {"invitation_id": o.invitation_id},
    "invitations.show": lambda o: {"token": BAD_TOKEN},
    "invitations.accept": lambda o: {"token": BAD_TOKEN},
    "clients.revoke": lambda o: {"client_pk": o.client_pk},
    # No such agent: a holder gets 404 (or 422 for an empty PATCH), nobody else through.
    "agents.show": lambda o: {"agent_id": 2_000_000_000},
    "agents.update": lambda o: {"agent_id": 2_000_000_000},
    "api.get_agent": lambda o: {"agent_id": 2_000_000_000},
    "api.update_agent": lambda o: {"agent_id": 2_000_000_000},
    # No such customer: a holder gets 404 (or 422 for an empty body), nobody else through.
    "customers.show": lambda o: {"customer_id": 2_000_000_000},
    "api.get_customer": lambda o: {"customer_id": 2_000_000_000},
    "api.update_customer": lambda o: {"customer_id": 2_000_000_000},
    "api.delete_customer": lambda o: {"customer_id": 2_000_000_000},
    "api.export_customer": lambda o: {"customer_id": 2_000_000_000},
    "api.merge_customers": lambda o: {"customer_id": 2_000_000_000},
    "api.create_verification": lambda o: {"customer_id": 2_000_000_000},
    "api.list_verifications": lambda o: {"customer_id": 2_000_000_000},
    "customers.verify": lambda o: {"customer_id": 2_000_000_000},
    "customers.evidence": lambda o: {"customer_id": 2_000_000_000, "verification_id": 1},
    # No such customer, quote or product: a holder gets 404, nobody else through.
    "quotes.new": lambda o: {"customer_id": 2_000_000_000},
    "quotes.preview": lambda o: {"customer_id": 2_000_000_000},
    "quotes.compare": lambda o: {"customer_id": 2_000_000_000},
    "quotes.create": lambda o: {"customer_id": 2_000_000_000},
    "quotes.show": lambda o: {"quote_id": 2_000_000_000},
    "api.get_quote": lambda o: {"quote_id": 2_000_000_000},
    "products.show": lambda o: {"product_id": 2_000_000_000},
    "products.disable": lambda o: {"product_id": 2_000_000_000},
    "products.settings": lambda o: {"product_id": 2_000_000_000},
    "products.add_version": lambda o: {"product_id": 2_000_000_000},
    # No such quote, policy, renewal offer or customer: a holder gets 404, nobody else
    # through. A bad portal invitation link is a 404 for anyone (public).
    "policies.bind_form": lambda o: {"quote_id": 2_000_000_000},
    "policies.bind": lambda o: {"quote_id": 2_000_000_000},
    "policies.show": lambda o: {"policy_id": 2_000_000_000},
    "policies.issue": lambda o: {"policy_id": 2_000_000_000},
    "policies.endorse": lambda o: {"policy_id": 2_000_000_000},
    "policies.cancel": lambda o: {"policy_id": 2_000_000_000},
    "policies.customer_policies": lambda o: {"customer_id": 2_000_000_000},
    "policies.accept_offer": lambda o: {"offer_id": 2_000_000_000},
    "policies.rerate_report": lambda o: {"job_id": o.job_id},
    "policies.decline_offer": lambda o: {"offer_id": 2_000_000_000},
    "api.bind_quote": lambda o: {"quote_id": 2_000_000_000},
    "api.issue_policy": lambda o: {"policy_id": 2_000_000_000},
    "api.get_policy": lambda o: {"policy_id": 2_000_000_000},
    "api.endorse_policy": lambda o: {"policy_id": 2_000_000_000},
    "api.cancel_policy": lambda o: {"policy_id": 2_000_000_000},
    "api.list_renewal_offers": lambda o: {"policy_id": 2_000_000_000},
    "api.accept_renewal_offer": lambda o: {"offer_id": 2_000_000_000},
    "api.decline_renewal_offer": lambda o: {"offer_id": 2_000_000_000},
    "portal.policy": lambda o: {"policy_id": 2_000_000_000},
    "portal.accept_offer": lambda o: {"offer_id": 2_000_000_000},
    "portal.decline_offer": lambda o: {"offer_id": 2_000_000_000},
    "portal.invite": lambda o: {"customer_id": 2_000_000_000},
    "portal.join_form": lambda o: {"token": BAD_TOKEN},
    "portal.join": lambda o: {"token": BAD_TOKEN},
    # No such upload or import in this tenant: a holder gets 404, nobody else through.
    "customer_import.mapping_form": lambda o: {"upload_id": uuid.UUID(int=1)},
    "customer_import.start": lambda o: {"upload_id": uuid.UUID(int=1)},
    "customer_import.show": lambda o: {"job_id": o.job_id},
    "customer_import.status": lambda o: {"job_id": o.job_id},
    "customer_import.errors_csv": lambda o: {"job_id": o.job_id},
    "security.reset_password": lambda o: {"token": BAD_TOKEN},
    "security.two_factor_setup_validate": lambda o: {"token": BAD_TOKEN},
    "security.wan_register_response": lambda o: {"token": BAD_TOKEN},
    "security.wan_signin_response": lambda o: {"token": BAD_TOKEN},
    "security.wan_verify_response": lambda o: {"token": BAD_TOKEN},
}


def _objects(app: Flask, alpha: Tenant) -> Objects:
    signup_id = uuid.uuid4()
    with admin_engine(app).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO public.signups (id, slug, name, admin_email, status, progress)"
                " VALUES (:id, 'matrix-signup', 'Matrix', 'matrix@example.com', 'failed', 0)"
            ),
            {"id": signup_id},
        )
    target = create_user(app, alpha, f"matrix.{uuid.uuid4().hex[:8]}@alpha.example.com", ["agent"])
    with app.app_context(), tenant_context(alpha):
        job = jobs.Job(type="matrix.sample", payload={}, status=jobs.FINISHED, max_attempts=1)
        db.session.add(job)
        if db.session.scalars(select(Role).where(Role.name == MATRIX_ROLE)).one_or_none() is None:
            db.session.add(Role(name=MATRIX_ROLE, permissions=["reports:read"]))
        agent = db.session.scalars(select(Role).where(Role.name == "agent")).one()
        invitation, _ = invitations.issue(
            f"invitee.{uuid.uuid4().hex[:8]}@alpha.example.com", agent, hours=1, invited_by_id=None
        )
        admin = db.session.scalars(select(User).where(User.email == role_email("admin", "alpha")))
        client, _ = tokens.create_client("Matrix", ["customers:read"], admin.one())
        db.session.commit()
        return Objects(signup_id, job.id, target, invitation.id, client.id)


# --- calling a route -----------------------------------------------------------------


def _method(rule: Rule) -> str:
    methods = rule.methods or set()
    if "GET" in methods:
        return "GET"
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        if method in methods:
            return method
    raise AssertionError(f"{rule.endpoint}: no method to call")


def _host(app: Flask, endpoint: str) -> str | None:
    """The tenant host ("alpha") for tenant routes, None for apex-only ones."""
    blueprint = endpoint.rpartition(".")[0]
    apex_only = hosts._require_apex in app.before_request_funcs.get(blueprint, [])
    return None if apex_only else "alpha"


def _is_api(path: str) -> bool:
    return path.startswith("/api/")


@dataclass(frozen=True)
class Caller:
    """How one context presents itself: a session cookie for screens, a bearer token
    for the API, or nothing."""

    name: str
    role: str | None
    cookie: str | None = None
    token: str | None = None

    def call(self, app: Flask, host: str | None, method: str, path: str) -> TestResponse:
        client = host_client(app, host)
        headers = {}
        if self.cookie is not None:
            client.set_cookie(
                app.config["SESSION_COOKIE_NAME"],
                self.cookie,
                domain=urlsplit(client.base_url).hostname,
            )
        if self.token is not None and _is_api(path):
            headers["Authorization"] = f"Bearer {self.token}"
        # Buffered: a streamed body (a CSV export) is read inside its own request, not
        # left to close later, in the middle of another one.
        return client.open(path, method=method, headers=headers, buffered=True)


def _session_cookie(app: Flask, client: HostClient) -> str:
    cookie = client.get_cookie(
        app.config["SESSION_COOKIE_NAME"], domain=urlsplit(client.base_url).hostname
    )
    assert cookie is not None
    return cookie.value


def _access_token(app: Flask, slug: str, email: str) -> str | None:
    response = host_client(app, slug).post(
        "/api/v1/auth/token", json={"email": email, "password": PASSWORD}
    )
    assert response.status_code == 200, (email, response.text)
    return response.json["access_token"]


def _own(app: Flask, role: str) -> Caller:
    email = role_email(role, "alpha")
    client = sign_in(app, "alpha", email)
    return Caller(
        "own tenant", role, _session_cookie(app, client), _access_token(app, "alpha", email)
    )


def _other(app: Flask, role: str) -> Caller:
    email = role_email(role, "beta")
    client = sign_in(app, "beta", email)
    return Caller(
        "other tenant", role, _session_cookie(app, client), _access_token(app, "beta", email)
    )


def _still_valid(app: Flask, caller: Caller) -> bool:
    """False once a call (say, "log out everywhere") ended the caller's session."""
    return _let_through(caller.call(app, "alpha", "GET", "/"))


# --- expectations --------------------------------------------------------------------


def _to_login(response: TestResponse) -> bool:
    location = urlsplit(response.headers.get("Location", ""))
    return response.status_code in (302, 303) and location.path == "/login"


def _login_redirect(response: TestResponse) -> bool:
    """Sent to sign in, and back afterwards: the answer to nobody signed in. (A view
    that signs the caller out, as its purpose, sends them to /login without `next`.)"""
    return _to_login(response) and "next" in parse_qs(urlsplit(response.headers["Location"]).query)


def _unauthenticated(response: TestResponse, path: str) -> bool:
    if _is_api(path):
        return response.status_code == 401
    return _login_redirect(response)


def _let_through(response: TestResponse) -> bool:
    return response.status_code not in (401, 403) and not _login_redirect(response)


def expectation(access: authz.Access, grants: frozenset[str], signed_in: bool) -> str:
    """One of "through", "public", "forbidden" or "sign in"."""
    if access.kind == "public":
        return "public"
    if not signed_in:
        return "sign in"
    if all(permission in grants for permission in access.permissions):
        return "through"
    return "forbidden"


def _meets(expected: str, response: TestResponse, path: str) -> bool:
    if expected == "public":
        return response.status_code not in (401, 403)
    if expected == "sign in":
        return _unauthenticated(response, path)
    if expected == "forbidden":
        return response.status_code == 403
    return _let_through(response)


# --- the tests -----------------------------------------------------------------------


def _routes(app: Flask) -> list[Rule]:
    return sorted(
        (rule for rule in app.url_map.iter_rules() if rule.endpoint not in EXCLUDED),
        key=lambda rule: rule.rule,
    )


def test_every_route_with_parameters_has_sample_values(app: Flask) -> None:
    missing = sorted(r.endpoint for r in _routes(app) if r.arguments and r.endpoint not in SAMPLES)
    assert missing == [], f"add sample URL values to SAMPLES in {__name__} for: {missing}"
    stale = sorted(set(SAMPLES) - set(app.view_functions))
    assert stale == [], f"SAMPLES names endpoints that no longer exist: {stale}"
    assert set(EXCLUDED) <= set(app.view_functions)


def test_every_route_declares_its_access(app: Flask) -> None:
    undeclared = [r.endpoint for r in _routes(app) if authz.route_access(app, r.endpoint) is None]
    assert undeclared == []


def test_authorization_matrix(app: Flask, alpha: Tenant, role_users: dict) -> None:
    objects = _objects(app, alpha)
    with app.app_context(), tenant_context(alpha):
        grants = {
            role.name: frozenset(role.permissions or ())
            for role in db.session.scalars(select(Role).where(Role.name.in_(ROLES)))
        }
    own = {role: _own(app, role) for role in ROLES}
    other = {role: _other(app, role) for role in ROLES}
    anonymous = Caller("anonymous", None)

    failures: list[str] = []
    checked: Counter[str] = Counter()
    for rule in _routes(app):
        access = authz.route_access(app, rule.endpoint)
        assert access is not None, rule.endpoint
        values = SAMPLES[rule.endpoint](objects) if rule.arguments else {}
        with app.test_request_context():
            path = app.url_for(rule.endpoint, **values, _external=False)
        method, host = _method(rule), _host(app, rule.endpoint)
        calls = [(own[role], expectation(access, grants[role], True)) for role in ROLES]
        calls += [(other[role], expectation(access, grants[role], False)) for role in ROLES]
        calls.append((anonymous, expectation(access, frozenset(), False)))
        for caller, expected in calls:
            response = caller.call(app, host, method, path)
            checked[expected] += 1
            if not _meets(expected, response, path):
                failures.append(
                    f"{method} {path} [{rule.endpoint}] as {caller.role or '-'} "
                    f"({caller.name}): {response.status_code} "
                    f"{response.headers.get('Location', '')}, expected {expected}"
                )
            # Some views sign their caller out (log out everywhere, a second-factor step
            # out of turn): sign in again for the next route.
            own_session = caller.name == "own tenant"
            if own_session and _to_login(response) and not _still_valid(app, caller):
                own[caller.role] = _own(app, caller.role)
    assert failures == [], "\n".join(failures)
    assert checked.total() == len(_routes(app)) * (2 * len(ROLES) + 1)
    # Not vacuous: every kind of outcome was expected, and met, somewhere.
    assert set(checked) == {"through", "forbidden", "sign in", "public"}
