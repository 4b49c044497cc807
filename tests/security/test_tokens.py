"""API tokens: the password grant, JWT access tokens bound to their tenant, rotating
refresh tokens with reuse detection, and bearer-only authentication of /api/v1.

Every test makes its own users (committed, unique emails), because the requests go
through the app's own sessions and connections.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask_security import hash_password
from joserfc import jwt as jose_jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import OctKey
from sqlalchemy import select
from werkzeug.test import TestResponse

from core import settings
from core.app import create_app
from core.audit import AuditEntry
from core.db import db
from core.jobs import PERIODIC
from core.security import jwt, throttle, tokens
from core.security.models import User
from core.security.permissions import DEFAULT_ROLES
from core.tenancy import Tenant, tenant_context
from tests.conftest import PASSWORD, host_client

# --- helpers (test_api_clients.py uses them too) -------------------------------------


@dataclass(frozen=True)
class NewUser:
    id: int
    email: str
    totp_secret: str | None = None


def make_user(
    app: Flask, tenant: Tenant, roles: tuple[str, ...] = ("agent",), *, totp: bool = False
) -> NewUser:
    """A committed user of `tenant` with PASSWORD (and TOTP set up when asked)."""
    email = f"u{uuid.uuid4().hex[:10]}@{tenant.slug}.example.com"
    security = app.extensions["security"]
    with app.app_context(), tenant_context(tenant):
        user = security.datastore.create_user(
            email=email, password=hash_password(PASSWORD), roles=list(roles)
        )
        secret = None
        if totp:
            secret = security.totp_factory.generate_totp_secret()
            user.tf_totp_secret = secret
            user.tf_primary_method = "authenticator"
        db.session.commit()
        return NewUser(user.id, email, secret)


def totp_code(app: Flask, secret: str) -> str:
    with app.app_context():
        return app.extensions["security"].totp_factory.generate_totp_password(secret)


def request_token(client: Any, email: str, password: str = PASSWORD, **extra: Any) -> TestResponse:
    return client.post("/api/v1/auth/token", json={"email": email, "password": password, **extra})


def user_tokens(client: Any, user: NewUser) -> dict[str, Any]:
    response = request_token(client, user.email)
    assert response.status_code == 200, response.json
    return response.json


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def me(client: Any, token: str) -> TestResponse:
    return client.get("/api/v1/me", headers=bearer(token))


def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A JWT's header and claims, read without checking anything."""

    def part(segment: str) -> dict[str, Any]:
        return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))

    header, claims, _ = token.split(".")
    return part(header), part(claims)


def forge(app: Flask, signer: Tenant, claims: dict[str, Any], version: int = 1) -> str:
    """A token signed with `signer`'s real key, carrying whatever claims we like."""
    key = OctKey.import_key(jwt.derive_key(app.config["SECRET_KEY"], signer.id, version))
    return jose_jwt.encode({"alg": "HS256", "kid": f"v{version}"}, claims, key)


def audit_entries(
    app: Flask, tenant: Tenant, action: str, entity_id: Any = None, entity: str = "users"
) -> list:
    """Committed entries of `action`, about one entity (a user, by default) if given."""
    with app.app_context(), tenant_context(tenant):
        query = select(AuditEntry).where(AuditEntry.action == action)
        if entity_id is not None:
            query = query.where(AuditEntry.entity == entity, AuditEntry.entity_id == str(entity_id))
        return list(db.session.scalars(query.order_by(AuditEntry.id)))


def assert_invalid_token(response: TestResponse) -> None:
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.json["status"] == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="invalid_token"' in challenge


@pytest.fixture(autouse=True)
def fresh_sign_in_limits(app: Flask) -> Iterator[None]:
    """These tests fail sign-ins on purpose, all from 127.0.0.1: start each with empty
    rate-limit counts, and leave them empty for the tests that follow."""
    throttle.limiter(app).reset()
    yield
    throttle.limiter(app).reset()


# --- password grant ----------------------------------------------------------------


def test_password_grant_returns_a_bearer_jwt_and_a_refresh_token(app, alpha, alpha_client):
    user = make_user(app, alpha)
    response = request_token(alpha_client, user.email.upper())
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json
    assert body.keys() == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["refresh_token"].startswith("pbr_")

    header, claims = unverified(body["access_token"])
    assert header == {"alg": "HS256", "typ": "JWT", "kid": "v1"}
    assert claims["iss"] == "alpha.localhost:5000"
    assert claims["aud"] == "powerbuyer-api"
    assert claims["sub"] == f"user:{user.id}"
    assert claims["tenant"] == {"id": alpha.id, "slug": "alpha"}
    assert claims["exp"] - claims["iat"] == 900
    assert abs(claims["iat"] - time.time()) < 30
    assert len(claims["jti"]) == 32
    with app.app_context(), tenant_context(alpha):
        stored = db.session.get(User, user.id)
        assert claims["fsu"] == tokens.uniquifier_digest(stored)
        assert stored.fs_uniquifier not in body["access_token"]

    issued = audit_entries(app, alpha, "tokens.issue", user.id)
    assert [(e.actor, e.details["grant"]) for e in issued] == [(f"user:{user.id}", "password")]


def test_an_access_token_authenticates_api_calls_as_its_user(app, alpha, alpha_client):
    user = make_user(app, alpha)
    token = user_tokens(alpha_client, user)["access_token"]
    response = me(alpha_client, token)
    assert response.status_code == 200
    assert response.json == {
        "subject": f"user:{user.id}",
        "kind": "user",
        "email": user.email,
        "permissions": sorted(DEFAULT_ROLES["agent"]),
    }


def test_a_wrong_password_is_401_and_counts_toward_the_lockout(app, alpha, alpha_client):
    user = make_user(app, alpha)
    response = request_token(alpha_client, user.email, "wrong password here")
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.json["detail"] == "The email or password is not correct."
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "access_token" not in response.json
    failed = audit_entries(app, alpha, "auth.login_failed", user.id)
    assert [(e.details["method"], e.details["consecutive_failures"]) for e in failed] == [
        ("password", 1)
    ]
    with app.app_context(), tenant_context(alpha):
        assert db.session.get(User, user.id).failed_logins == 1


def test_an_unknown_email_is_the_same_401_and_audited(app, alpha, alpha_client):
    email = f"nobody-{uuid.uuid4().hex[:8]}@alpha.example.com"
    response = request_token(alpha_client, email)
    assert response.status_code == 401
    assert response.json["detail"] == "The email or password is not correct."
    failed = [
        e for e in audit_entries(app, alpha, "auth.login_failed") if e.details.get("email") == email
    ]
    assert len(failed) == 1
    assert failed[0].details["reason"] == "unknown_user"
    assert failed[0].details["via"] == "api"


def test_api_failures_lock_the_account_for_the_web_too(app, alpha, alpha_client):
    user = make_user(app, alpha)
    with app.app_context(), tenant_context(alpha):
        threshold = settings.get("lockout_threshold")
    for _ in range(threshold):
        assert request_token(alpha_client, user.email, "wrong password here").status_code == 401
    assert len(audit_entries(app, alpha, "auth.lockout", user.id)) == 1

    # Locked: even the right password is refused, here and on the login page.
    locked = request_token(alpha_client, user.email)
    assert locked.status_code == 401
    assert "locked" in locked.json["detail"]
    assert audit_entries(app, alpha, "auth.login_failed", user.id)[-1].details["reason"] == "locked"
    web = host_client(app, "alpha").post("/login", data={"email": user.email, "password": PASSWORD})
    assert web.status_code != 302


def test_a_successful_api_login_ends_the_failure_streak(app, alpha, alpha_client):
    user = make_user(app, alpha)
    request_token(alpha_client, user.email, "wrong password here")
    assert request_token(alpha_client, user.email).status_code == 200
    with app.app_context(), tenant_context(alpha):
        assert db.session.get(User, user.id).failed_logins == 0


def test_a_deactivated_user_gets_the_same_401(app, alpha, alpha_client):
    user = make_user(app, alpha)
    _change_user(app, alpha, user, "deactivate")
    response = request_token(alpha_client, user.email)
    assert response.status_code == 401
    assert response.json["detail"] == "The email or password is not correct."
    reasons = [
        e.details.get("reason") for e in audit_entries(app, alpha, "auth.login_failed", user.id)
    ]
    assert reasons == ["deactivated"]


def test_the_token_endpoint_shares_the_sign_in_rate_limit(app, alpha, alpha_client, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_RATE_LIMIT_PER_ACCOUNT", "2 per 10 minutes")
    email = f"nobody-{uuid.uuid4().hex[:8]}@alpha.example.com"
    assert request_token(alpha_client, email).status_code == 401
    assert request_token(alpha_client, email).status_code == 401
    limited = request_token(alpha_client, email)
    assert limited.status_code == 429
    assert limited.mimetype == "application/problem+json"
    assert int(limited.headers["Retry-After"]) > 0
    # The login page counts the same account's failures in the same window.
    web = host_client(app, "alpha").post("/login", data={"email": email, "password": "x"})
    assert web.status_code == 429


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"email", "password"}),
        ({"email": "a@b.example.com"}, {"password"}),
        ({"email": 5, "password": ["x"]}, {"email", "password"}),
        ({"grant_type": "magic", "email": "a@b.example.com", "password": "x"}, {"grant_type"}),
        ({"grant_type": "client_credentials"}, {"client_id", "client_secret"}),
        # PostgreSQL text cannot hold NUL: refused before any query (found by schemathesis).
        ({"email": "a\x00@b.example.com", "password": "x"}, {"email"}),
        (
            {"grant_type": "client_credentials", "client_id": "\x00", "client_secret": "s"},
            {"client_id"},
        ),
    ],
)
def test_malformed_token_requests_are_422_with_field_errors(alpha_client, body, errors):
    response = alpha_client.post("/api/v1/auth/token", json=body)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert set(response.json["errors"]) == errors


@pytest.mark.parametrize("payload", ["not json", "[1, 2]", "null"])
def test_a_body_that_is_not_a_json_object_is_422(alpha_client, payload):
    response = alpha_client.post(
        "/api/v1/auth/token", data=payload, content_type="application/json"
    )
    assert response.status_code == 422
    assert response.json["errors"] == {"body": ["Send a JSON object."]}


def test_two_factor_users_must_send_a_valid_totp_code(app, alpha, alpha_client):
    user = make_user(app, alpha, totp=True)
    assert user.totp_secret

    missing = request_token(alpha_client, user.email)
    assert missing.status_code == 401
    assert "otp" in missing.json["detail"]

    wrong = request_token(alpha_client, user.email, otp="000000")
    if wrong.status_code == 200:  # one in a million: 000000 is the current code
        wrong = request_token(alpha_client, user.email, otp="999999")
    assert wrong.status_code == 401
    failed = audit_entries(app, alpha, "auth.login_failed", user.id)[-1]
    assert (failed.details["method"], failed.details["second_factor"]) == ("code", True)

    right = request_token(alpha_client, user.email, otp=totp_code(app, user.totp_secret))
    assert right.status_code == 200
    assert right.json["token_type"] == "Bearer"


@pytest.fixture
def admins_need_two_factor(app: Flask, alpha: Tenant) -> Iterator[None]:
    """The default rule (the suite's tenants turn it off so anyone can sign in)."""
    with app.app_context(), tenant_context(alpha):
        saved = settings.get("mfa_required_roles")
        settings.set("mfa_required_roles", ["admin"])
        db.session.commit()
    yield
    with app.app_context(), tenant_context(alpha):
        settings.set("mfa_required_roles", saved)
        db.session.commit()


def test_a_role_that_requires_two_factor_cannot_skip_enrolment_through_the_api(
    app, alpha, alpha_client, admins_need_two_factor
):
    admin = make_user(app, alpha, roles=("admin",))
    response = request_token(alpha_client, admin.email)
    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"
    assert "two-factor" in response.json["detail"]
    assert not audit_entries(app, alpha, "tokens.issue", admin.id)

    enrolled = make_user(app, alpha, roles=("admin",), totp=True)
    code = totp_code(app, enrolled.totp_secret)
    assert request_token(alpha_client, enrolled.email, otp=code).status_code == 200


# --- bearer authentication ---------------------------------------------------------


def test_api_calls_without_a_token_are_401_with_a_bearer_challenge(alpha_client):
    response = alpha_client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_session_cookie_does_not_authenticate_the_api(app, alpha):
    user = make_user(app, alpha)
    browser = host_client(app, "alpha")
    assert (
        browser.post("/login", data={"email": user.email, "password": PASSWORD}).status_code == 302
    )
    assert browser.get("/").status_code == 200  # signed in on the screens
    assert browser.get("/api/v1/me").status_code == 401


@pytest.fixture(scope="module")
def csrf_app(app: Flask, app_config: dict) -> Iterator[Flask]:
    """An app with CSRF protection on, as in production (the suite turns it off)."""
    protected = create_app({**app_config, "WTF_CSRF_ENABLED": True})
    yield protected
    with protected.app_context():
        db.engine.dispose()


def test_the_api_needs_no_csrf_token_but_the_screens_still_do(app, alpha, csrf_app):
    user = make_user(app, alpha)
    api = host_client(csrf_app, "alpha")
    issued = request_token(api, user.email)
    assert issued.status_code == 200
    refresh = {"refresh_token": issued.json["refresh_token"]}
    assert api.post("/api/v1/auth/refresh", json=refresh).status_code == 200
    login = api.post("/login", data={"email": user.email, "password": PASSWORD})
    assert login.status_code == 400  # a form post without its CSRF token


@pytest.mark.parametrize(
    "garbage",
    ["abc", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "..", "ÿ" * 40, "x" * 4000],
)
def test_garbled_tokens_are_401_invalid_token(alpha_client, garbage):
    assert_invalid_token(me(alpha_client, garbage))


def test_an_unsigned_token_is_refused(app, alpha, alpha_client):
    token = user_tokens(alpha_client, make_user(app, alpha))["access_token"]
    none = base64.urlsafe_b64encode(json.dumps({"alg": "none"}).encode()).decode().rstrip("=")
    body = token.split(".")[1]
    assert_invalid_token(me(alpha_client, f"{none}.{body}."))


def test_a_tampered_token_is_refused(app, alpha, alpha_client):
    token = user_tokens(alpha_client, make_user(app, alpha))["access_token"]
    _, claims = unverified(token)
    claims["sub"] = "user:1"
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    head, _, signature = token.split(".")
    assert_invalid_token(me(alpha_client, f"{head}.{body}.{signature}"))


def test_an_expired_token_is_refused(app, alpha, alpha_client):
    token = user_tokens(alpha_client, make_user(app, alpha))["access_token"]
    _, claims = unverified(token)
    assert me(alpha_client, forge(app, alpha, claims)).status_code == 200
    past = int(time.time()) - 3600
    expired = forge(app, alpha, {**claims, "iat": past - 900, "exp": past})
    assert_invalid_token(me(alpha_client, expired))


# --- tenant binding ------------------------------------------------------------------


def test_a_token_of_one_tenant_is_refused_on_another_tenants_host(
    app, alpha, beta, alpha_client, beta_client
):
    token = user_tokens(alpha_client, make_user(app, alpha))["access_token"]
    assert me(alpha_client, token).status_code == 200
    assert_invalid_token(me(beta_client, token))


def test_another_tenants_key_does_not_verify_the_signature(app, alpha, beta, alpha_client):
    token = user_tokens(alpha_client, make_user(app, alpha))["access_token"]
    with app.app_context():
        assert jwt.verify(token, alpha)["tenant"]["slug"] == "alpha"
        with pytest.raises(jwt.InvalidToken) as refused:
            jwt.verify(token, beta)
    assert isinstance(refused.value.__cause__, BadSignatureError)
    assert jwt.derive_key("k", alpha.id, 1) != jwt.derive_key("k", beta.id, 1)
    assert jwt.derive_key("k", alpha.id, 1) != jwt.derive_key("k", alpha.id, 2)


def test_the_tenant_claim_is_checked_even_when_the_signature_verifies(
    app, alpha, beta, alpha_client, beta_client
):
    """Signed with beta's own key (as a key mix-up would), but naming alpha."""
    user = make_user(app, beta)
    _, claims = unverified(user_tokens(beta_client, user)["access_token"])
    assert me(beta_client, forge(app, beta, claims)).status_code == 200

    other_tenant = forge(app, beta, {**claims, "tenant": {"id": alpha.id, "slug": "alpha"}})
    assert_invalid_token(me(beta_client, other_tenant))
    with app.app_context(), pytest.raises(jwt.InvalidToken, match="another tenant"):
        jwt.verify(other_tenant, beta)

    other_issuer = forge(app, beta, {**claims, "iss": "alpha.localhost:5000"})
    assert_invalid_token(me(beta_client, other_issuer))

    other_audience = forge(app, beta, {**claims, "aud": "another-api"})
    assert_invalid_token(me(beta_client, other_audience))


def test_key_rotation_retires_and_then_drops_the_old_version(app, alpha, alpha_client, monkeypatch):
    old = user_tokens(alpha_client, make_user(app, alpha))["access_token"]
    monkeypatch.setitem(app.config, "JWT_KEY_VERSION", 2)
    monkeypatch.setitem(app.config, "JWT_RETIRED_KEY_VERSIONS", (1,))
    assert me(alpha_client, old).status_code == 200
    new = user_tokens(alpha_client, make_user(app, alpha))["access_token"]
    assert unverified(new)[0]["kid"] == "v2"
    monkeypatch.setitem(app.config, "JWT_RETIRED_KEY_VERSIONS", ())
    assert_invalid_token(me(alpha_client, old))
    assert me(alpha_client, new).status_code == 200


# --- revocation through the user --------------------------------------------------------


def _change_user(app: Flask, tenant: Tenant, user: NewUser, change: str) -> None:
    with app.app_context(), tenant_context(tenant):
        datastore = app.extensions["security"].datastore
        stored = db.session.get(User, user.id)
        if change == "log out everywhere":
            datastore.set_uniquifier(stored)
        else:
            datastore.deactivate_user(stored)
        db.session.commit()


@pytest.mark.parametrize("change", ["log out everywhere", "deactivate"])
def test_tokens_stop_working_when_the_user_logs_out_everywhere_or_is_deactivated(
    app, alpha, alpha_client, change
):
    user = make_user(app, alpha)
    issued = user_tokens(alpha_client, user)
    assert me(alpha_client, issued["access_token"]).status_code == 200
    _change_user(app, alpha, user, change)
    assert_invalid_token(me(alpha_client, issued["access_token"]))
    refreshed = alpha_client.post(
        "/api/v1/auth/refresh", json={"refresh_token": issued["refresh_token"]}
    )
    assert refreshed.status_code == 401


# --- refresh tokens ----------------------------------------------------------------


def _refresh(client: Any, refresh_token: str) -> TestResponse:
    return client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})


def _family_rows(app: Flask, tenant: Tenant, user: NewUser) -> list[tokens.RefreshToken]:
    with app.app_context(), tenant_context(tenant):
        query = select(tokens.RefreshToken).where(tokens.RefreshToken.user_id == user.id)
        return list(db.session.scalars(query.order_by(tokens.RefreshToken.id)))


def test_refresh_rotates_within_the_family(app, alpha, alpha_client):
    user = make_user(app, alpha)
    first = user_tokens(alpha_client, user)
    second = _refresh(alpha_client, first["refresh_token"])
    assert second.status_code == 200
    assert second.headers["Cache-Control"] == "no-store"
    assert second.json["refresh_token"] != first["refresh_token"]
    assert unverified(second.json["access_token"])[1]["sub"] == f"user:{user.id}"
    assert me(alpha_client, second.json["access_token"]).json["subject"] == f"user:{user.id}"

    rows = _family_rows(app, alpha, user)
    assert len(rows) == 2
    assert rows[0].family_id == rows[1].family_id
    assert rows[0].used_at is not None and rows[1].used_at is None
    # Stored as digests only.
    assert {r.token_hash for r in rows} == {
        tokens.digest(first["refresh_token"]),
        tokens.digest(second.json["refresh_token"]),
    }
    third = _refresh(alpha_client, second.json["refresh_token"])
    assert third.status_code == 200


def test_reusing_a_used_refresh_token_revokes_the_whole_family(app, alpha, alpha_client):
    user = make_user(app, alpha)
    other_family = user_tokens(alpha_client, user)
    stolen = user_tokens(alpha_client, user)
    rotated = _refresh(alpha_client, stolen["refresh_token"]).json

    replay = _refresh(alpha_client, stolen["refresh_token"])
    assert replay.status_code == 401
    assert replay.mimetype == "application/problem+json"
    assert "family" in replay.json["detail"]
    # The legitimate holder's newer token is gone too: the family is revoked.
    assert _refresh(alpha_client, rotated["refresh_token"]).status_code == 401

    stolen_family = {
        r.family_id
        for r in _family_rows(app, alpha, user)
        if r.token_hash == tokens.digest(stolen["refresh_token"])
    }
    for row in _family_rows(app, alpha, user):
        assert (row.revoked_at is not None) == (row.family_id in stolen_family)
    # Another family of the same user (another device) is untouched.
    assert _refresh(alpha_client, other_family["refresh_token"]).status_code == 200

    reuse = audit_entries(app, alpha, "tokens.refresh_reuse", user.id)
    assert len(reuse) == 1
    assert reuse[0].details["family"] == str(stolen_family.pop())
    assert reuse[0].details["revoked"] == 2


def test_two_racing_refreshes_with_one_token_count_as_reuse(app, alpha, alpha_client):
    """The row lock serialises them: the second sees the token used, as a thief's
    replay would be, instead of both getting a new pair."""
    issued = user_tokens(alpha_client, make_user(app, alpha))
    start = threading.Barrier(2)
    results: list[TestResponse] = []

    def race() -> None:
        client = host_client(app, "alpha")
        start.wait()
        results.append(_refresh(client, issued["refresh_token"]))

    threads = [threading.Thread(target=race) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(r.status_code for r in results) == [200, 401]
    winner = next(r for r in results if r.status_code == 200)
    assert _refresh(alpha_client, winner.json["refresh_token"]).status_code == 401


def test_revoke_ends_the_refresh_token_family(app, alpha, alpha_client):
    user = make_user(app, alpha)
    issued = user_tokens(alpha_client, user)
    rotated = _refresh(alpha_client, issued["refresh_token"]).json
    response = alpha_client.post(
        "/api/v1/auth/revoke", json={"refresh_token": issued["refresh_token"]}
    )
    assert response.status_code == 204
    assert _refresh(alpha_client, rotated["refresh_token"]).status_code == 401
    assert audit_entries(app, alpha, "tokens.revoke", user.id)


def test_revoking_an_unknown_token_answers_204_and_changes_nothing(alpha_client):
    response = alpha_client.post("/api/v1/auth/revoke", json={"refresh_token": "pbr_unknown"})
    assert response.status_code == 204


def test_refresh_tokens_are_bound_to_their_tenant(app, alpha, alpha_client, beta_client):
    issued = user_tokens(alpha_client, make_user(app, alpha))
    assert _refresh(beta_client, issued["refresh_token"]).status_code == 401
    assert _refresh(alpha_client, issued["refresh_token"]).status_code == 200


def test_an_expired_refresh_token_is_refused(app, alpha, alpha_client):
    user = make_user(app, alpha)
    issued = user_tokens(alpha_client, user)
    with app.app_context(), tenant_context(alpha):
        row = db.session.scalar(
            select(tokens.RefreshToken).where(
                tokens.RefreshToken.token_hash == tokens.digest(issued["refresh_token"])
            )
        )
        row.expires_at = row.created_at
        db.session.commit()
    response = _refresh(alpha_client, issued["refresh_token"])
    assert response.status_code == 401
    assert "expired" in response.json["detail"]


def test_the_daily_purge_keeps_only_tokens_that_still_matter(app, alpha, alpha_db):
    user_id = db.session.scalar(select(User.id).order_by(User.id).limit(1))
    now = datetime.now(UTC)
    rows = {
        name: tokens.RefreshToken(
            token_hash=tokens.digest(name),
            family_id=uuid.uuid4(),
            user_id=user_id,
            uniquifier_hash="x",
            expires_at=now + expires,
            used_at=now if name == "used" else None,
            revoked_at=now + revoked if revoked is not None else None,
        )
        for name, expires, revoked in [
            ("live", timedelta(days=1), None),
            ("used", timedelta(days=1), None),
            ("expired", timedelta(seconds=-1), None),
            ("just revoked", timedelta(days=1), timedelta(hours=-1)),
            ("long revoked", timedelta(days=1), timedelta(days=-2)),
        ]
    }
    db.session.add_all(rows.values())
    db.session.flush()
    tokens.purge_refresh_tokens()
    left = set(
        db.session.scalars(
            select(tokens.RefreshToken.token_hash).where(
                tokens.RefreshToken.token_hash.in_([tokens.digest(n) for n in rows])
            )
        )
    )
    assert left == {tokens.digest(n) for n in ("live", "used", "just revoked")}
    assert "tokens.purge" in PERIODIC


@pytest.mark.parametrize("body", [{}, {"refresh_token": ""}, {"refresh_token": 42}])
def test_refresh_without_a_token_is_422(alpha_client, body):
    response = alpha_client.post("/api/v1/auth/refresh", json=body)
    assert response.status_code == 422
    assert set(response.json["errors"]) == {"refresh_token"}


# --- schema ------------------------------------------------------------------------


def test_the_migration_creates_the_tables_the_models_describe(app, alpha):
    mine = {"refresh_tokens", "api_clients"}

    def include(obj: Any, name: str | None, kind: str, reflected: bool, other: Any) -> bool:
        table = obj if kind == "table" else getattr(obj, "table", None)
        return table is not None and table.name in mine

    with app.app_context(), tenant_context(alpha):
        context = MigrationContext.configure(
            db.session.connection(), opts={"include_object": include}
        )
        assert compare_metadata(context, db.metadata) == []
