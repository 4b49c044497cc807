"""Password login: the password policy everywhere a password is set, changing and
resetting it by email, lockout after repeated failures, rate limits."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text, update

from core import settings
from core.db import db
from core.security import passwords
from core.security.models import User
from core.tenancy import Tenant, tenant_context
from tenants import registry
from tests import smtp
from tests.conftest import PASSWORD, host_client, make_tenant
from tests.security.conftest import audit_entries, create_user, last_audit_id

NEW_PASSWORD = "a brand new passphrase for spring"
_addresses = itertools.count(1)


def fresh_ip() -> str:
    """A client address no other test uses, so rate limits of one test never meet
    another's (documentation range, never contacted: it only fills REMOTE_ADDR)."""
    n = next(_addresses)
    return f"198.51.{100 + n // 250}.{n % 250 + 1}"


def client_from(app: Flask, slug: str, ip: str | None = None) -> FlaskClient:
    client = host_client(app, slug)
    client.environ_base["REMOTE_ADDR"] = ip or fresh_ip()
    return client


def login(client: FlaskClient, email: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    return client.post("/login", data={"email": email, "password": password})


def new_user(app: Flask, tenant: Tenant, roles: tuple[str, ...] = ("agent",)) -> tuple[str, int]:
    email = f"u-{uuid.uuid4().hex[:8]}@{tenant.slug}.example.com"
    return email, create_user(app, tenant, email, list(roles))


def user_row(app: Flask, tenant: Tenant, user_id: int) -> User:
    with app.app_context(), tenant_context(tenant):
        user = db.session.get(User, user_id)
        assert user is not None
        db.session.expunge(user)
        return user


@pytest.fixture
def mailbox(app: Flask) -> Iterator[smtp.Mailbox]:
    with smtp.receiving(app) as box:
        yield box


# --- the policy ------------------------------------------------------------------------


def test_policy_wants_twelve_characters_and_no_common_password(app: Flask) -> None:
    with app.test_request_context():
        assert passwords.problems(PASSWORD) == []
        assert passwords.problems(NEW_PASSWORD) == []
        short = passwords.problems("Xq7#vL2!")
        assert short and "at least 12 characters" in short[0]
        # Twelve characters, but among the most common passwords zxcvbn ships.
        for common in ("password1234", "qwertyuiop123", "iloveyou1234"):
            rejected = passwords.problems(common)
            assert rejected, common
            assert "common" in " ".join(rejected).lower(), (common, rejected)
        # Guessable from the person's own details.
        email = "harriet.vance@brokerage.example.com"
        assert passwords.problems(email, email=email)
        with pytest.raises(passwords.PasswordRejected):
            passwords.hash_new("password1234")
        assert passwords.hash_new(PASSWORD).startswith("$argon2id$")


def test_signup_refuses_a_common_password(app: Flask, apex_client: FlaskClient) -> None:
    slug = f"weak-{uuid.uuid4().hex[:6]}"
    response = apex_client.post(
        "/signup",
        data={
            "name": "Weak Brokers",
            "slug": slug,
            "admin_email": f"owner@{slug}.example.com",
            "password": "password1234",
            "password_confirm": "password1234",
        },
    )
    assert response.status_code == 422
    assert "common password" in response.text
    with app.app_context(), db.engine.connect() as conn:
        count = conn.scalar(
            text("SELECT count(*) FROM public.signups WHERE slug = :s"), {"s": slug}
        )
    assert count == 0


def test_cli_refuses_a_common_admin_password(app: Flask) -> None:
    slug = f"weak-{uuid.uuid4().hex[:6]}"
    result = app.test_cli_runner().invoke(
        args=[
            "tenants",
            "create",
            "--name",
            "Weak Brokers",
            "--admin-email",
            f"owner@{slug}.example.com",
            "--admin-password",
            "password1234",
            "--",
            slug,
        ]
    )
    assert result.exit_code != 0
    assert "--admin-password is not acceptable" in result.output
    assert "common password" in result.output
    with app.app_context():
        assert registry.by_slug(db.engine, slug) is None


# --- change and reset --------------------------------------------------------------------


def test_change_password_applies_the_policy_mails_a_notice_and_ends_other_sessions(
    app: Flask, alpha: Tenant, mailbox: smtp.Mailbox
) -> None:
    email, _ = new_user(app, alpha)
    client, elsewhere = client_from(app, "alpha"), client_from(app, "alpha")
    assert login(client, email).status_code == 302
    assert login(elsewhere, email).status_code == 302

    page = client.get("/change")
    assert page.status_code == 200
    assert "Alpha" in page.text  # in the tenant's layout

    weak = client.post(
        "/change",
        data={
            "password": PASSWORD,
            "new_password": "password1234",
            "new_password_confirm": "password1234",
        },
    )
    assert weak.status_code == 422
    assert "common password" in weak.text
    assert mailbox.to(email) == []

    changed = client.post(
        "/change",
        data={
            "password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "new_password_confirm": NEW_PASSWORD,
        },
    )
    assert changed.status_code == 302
    assert changed.headers["Location"] == "/account"
    notice = mailbox.wait_for(email)
    assert notice["Subject"] == "Your password has been changed"
    assert notice["From"] == "Alpha <no-reply@localhost>"

    assert client.get("/account").status_code == 200  # still signed in here...
    assert elsewhere.get("/account").status_code == 302  # ...and nowhere else
    assert login(client_from(app, "alpha"), email).status_code == 422
    assert login(client_from(app, "alpha"), email, NEW_PASSWORD).status_code == 302


def test_reset_password_by_the_link_in_the_email(
    app: Flask, alpha: Tenant, mailbox: smtp.Mailbox
) -> None:
    email, _ = new_user(app, alpha)
    client = client_from(app, "alpha")
    assert "Forgot your password?" in client.get("/login").text
    asked = client.post("/reset", data={"email": email})
    assert asked.status_code == 200

    mail = mailbox.wait_for(email)
    assert mail["Subject"] == "Password reset instructions"
    (link,) = [u for u in smtp.links_in(mail) if "/reset/" in u]
    assert link.startswith("http://alpha.localhost:5000/reset/")
    path = link.removeprefix("http://alpha.localhost:5000")

    form = client.get(path)
    assert form.status_code == 200
    weak = client.post(
        path, data={"password": "qwertyuiop123", "password_confirm": "qwertyuiop123"}
    )
    assert weak.status_code == 422
    assert login(client_from(app, "alpha"), email).status_code == 302  # unchanged

    done = client.post(path, data={"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})
    assert done.status_code == 302
    assert login(client_from(app, "alpha"), email, NEW_PASSWORD).status_code == 302
    assert login(client_from(app, "alpha"), email).status_code == 422
    # The link worked once.
    again = client.post(path, data={"password": PASSWORD, "password_confirm": PASSWORD})
    assert login(client_from(app, "alpha"), email).status_code == 422, again.status_code


def test_a_reset_link_of_alpha_does_nothing_on_betas_host(
    app: Flask, alpha: Tenant, mailbox: smtp.Mailbox
) -> None:
    email, _ = new_user(app, alpha)
    client_from(app, "alpha").post("/reset", data={"email": email})
    (link,) = [u for u in smtp.links_in(mailbox.wait_for(email)) if "/reset/" in u]
    path = link.removeprefix("http://alpha.localhost:5000")
    beta = client_from(app, "beta")
    beta.post(path, data={"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})
    assert login(client_from(app, "alpha"), email).status_code == 302  # password unchanged


# --- lockout ----------------------------------------------------------------------------


def test_lockout_after_five_failures_audited_and_lifted_by_an_admin(
    app: Flask, alpha: Tenant
) -> None:
    email, user_id = new_user(app, alpha)
    since = last_audit_id(app, alpha)
    for attempt in range(1, 5):
        assert login(client_from(app, "alpha"), email, "wrong password!").status_code == 422
        assert user_row(app, alpha, user_id).failed_logins == attempt
        assert user_row(app, alpha, user_id).locked_at is None
    assert login(client_from(app, "alpha"), email, "wrong password!").status_code == 422
    locked = user_row(app, alpha, user_id)
    assert locked.failed_logins == 5
    assert locked.locked_at is not None

    failures = audit_entries(app, alpha, "auth.login_failed", since)
    assert [e.entity_id for e in failures] == [str(user_id)] * 5
    assert [e.details["consecutive_failures"] for e in failures] == [1, 2, 3, 4, 5]
    (lockout,) = audit_entries(app, alpha, "auth.lockout", since)
    assert lockout.entity_id == str(user_id)

    # The right password no longer opens the account, and that refusal is audited too.
    refused = login(client_from(app, "alpha"), email)
    assert refused.status_code == 422
    assert "locked after too many failed sign-ins" in refused.text
    assert audit_entries(app, alpha, "auth.login_failed", since)[-1].details["reason"] == "locked"

    admin = client_from(app, "alpha")
    assert login(admin, "admin@alpha.example.com").status_code == 302
    row = admin.get("/admin/users").text
    assert f'action="/admin/users/{user_id}/unlock"' in row
    lifted = admin.post(f"/admin/users/{user_id}/unlock", headers={"HX-Request": "true"})
    assert lifted.status_code == 200
    assert f'id="user-{user_id}"' in lifted.text
    assert "Active" in lifted.text
    (unlock,) = audit_entries(app, alpha, "auth.unlock", since)
    assert unlock.entity_id == str(user_id)
    assert user_row(app, alpha, user_id).failed_logins == 0

    assert login(client_from(app, "alpha"), email).status_code == 302


def test_a_success_ends_the_failure_streak(app: Flask, alpha: Tenant) -> None:
    email, user_id = new_user(app, alpha)
    for _ in range(4):
        login(client_from(app, "alpha"), email, "wrong password!")
    assert login(client_from(app, "alpha"), email).status_code == 302
    assert user_row(app, alpha, user_id).failed_logins == 0
    for _ in range(4):
        login(client_from(app, "alpha"), email, "wrong password!")
    assert user_row(app, alpha, user_id).locked_at is None


def test_threshold_and_duration_are_tenant_settings(app: Flask) -> None:
    tenant = make_tenant(app, f"lock-{uuid.uuid4().hex[:6]}")
    with app.app_context(), tenant_context(tenant):
        settings.set("lockout_threshold", 2)
        settings.set("lockout_minutes", 0)  # until an admin lifts it
        db.session.commit()
    email, user_id = new_user(app, tenant)
    for _ in range(2):
        login(client_from(app, tenant.slug), email, "wrong password!")
    assert user_row(app, tenant, user_id).locked_at is not None
    # Long ago, but with a duration of 0 only an admin unlocks.
    with app.app_context(), tenant_context(tenant):
        db.session.execute(
            update(User)
            .where(User.id == user_id)
            .values(locked_at=datetime.now(UTC) - timedelta(days=30))
        )
        db.session.commit()
    assert login(client_from(app, tenant.slug), email).status_code == 422

    with app.app_context(), tenant_context(tenant):
        settings.set("lockout_minutes", 15)
        db.session.commit()
    # Locked 30 days ago for 15 minutes: the lock has run out.
    assert login(client_from(app, tenant.slug), email).status_code == 302


def test_unknown_addresses_are_audited(app: Flask, alpha: Tenant) -> None:
    since = last_audit_id(app, alpha)
    ghost = f"ghost-{uuid.uuid4().hex[:6]}@alpha.example.com"
    assert login(client_from(app, "alpha"), ghost).status_code == 422
    (entry,) = audit_entries(app, alpha, "auth.login_failed", since)
    assert entry.entity_id is None
    assert entry.details["reason"] == "unknown_user"


# --- rate limits ------------------------------------------------------------------------


@pytest.fixture
def tight_limits(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "LOGIN_RATE_LIMIT_PER_IP", "3 per minute")
    monkeypatch.setitem(app.config, "LOGIN_RATE_LIMIT_PER_ACCOUNT", "3 per minute")


def test_failed_logins_from_one_address_answer_429(app: Flask, alpha, tight_limits) -> None:
    ip = fresh_ip()
    for _ in range(3):
        ghost = f"ghost-{uuid.uuid4().hex[:6]}@alpha.example.com"
        assert login(client_from(app, "alpha", ip), ghost).status_code == 422
    limited = login(client_from(app, "alpha", ip), "admin@alpha.example.com")
    assert limited.status_code == 429
    assert "Too many failed sign-in attempts" in limited.text
    assert "Retry-After" in limited.headers
    # Limits are per address: another one is still heard.
    other = login(client_from(app, "alpha"), "admin@alpha.example.com")
    assert other.status_code == 302


def test_successful_logins_cost_nothing(app: Flask, alpha, tight_limits) -> None:
    ip = fresh_ip()
    email, _ = new_user(app, alpha)
    for _ in range(5):
        assert login(client_from(app, "alpha", ip), email).status_code == 302


def test_failed_logins_on_one_account_answer_429_whatever_the_address(
    app: Flask, alpha, beta, tight_limits
) -> None:
    ghost = f"ghost-{uuid.uuid4().hex[:6]}@example.com"
    for _ in range(3):
        assert login(client_from(app, "alpha"), ghost).status_code == 422
    assert login(client_from(app, "alpha"), ghost).status_code == 429
    # The account's key carries the tenant: the same address on beta is another account.
    assert login(client_from(app, "beta"), ghost).status_code == 422


def test_reset_requests_are_limited_per_account(app: Flask, alpha, mailbox) -> None:
    email, _ = new_user(app, alpha)
    for _ in range(3):
        assert client_from(app, "alpha").post("/reset", data={"email": email}).status_code == 200
    assert client_from(app, "alpha").post("/reset", data={"email": email}).status_code == 429
    assert len(mailbox.to(email)) == 3


def test_audit_of_a_failure_survives_the_refused_request(app: Flask, alpha: Tenant) -> None:
    """The request is rolled back, the failure count and its audit entry are not."""
    email, user_id = new_user(app, alpha)
    since = last_audit_id(app, alpha)
    login(client_from(app, "alpha"), email, "wrong password!")
    with app.app_context(), tenant_context(alpha):
        stored = db.session.scalar(select(User.failed_logins).where(User.id == user_id))
    assert stored == 1
    assert len(audit_entries(app, alpha, "auth.login_failed", since)) == 1


# --- the security settings screen --------------------------------------------------------


def test_security_settings_screen_checks_everything_before_saving(app: Flask) -> None:
    tenant = make_tenant(app, f"cfg-{uuid.uuid4().hex[:6]}")
    admin = client_from(app, tenant.slug)
    assert login(admin, f"admin@{tenant.slug}.example.com").status_code == 302
    page = admin.get("/admin/security")
    assert page.status_code == 200
    assert 'name="session_idle_minutes"' in page.text
    since = last_audit_id(app, tenant)

    form = {
        "mfa_required_roles": ["manager"],
        "session_idle_minutes": "20",
        "session_absolute_hours": "0",  # out of range
        "lockout_threshold": "4",
        "lockout_minutes": "10",
        "invitation_hours": "48",
    }
    refused = admin.post("/admin/security", data=form)
    assert refused.status_code == 422
    assert "Must be between 1 and 720." in refused.text
    with app.app_context(), tenant_context(tenant):
        assert settings.get("session_idle_minutes") == 30  # nothing was saved
        assert settings.get("mfa_required_roles") == []

    saved = admin.post("/admin/security", data=form | {"session_absolute_hours": "8"})
    assert saved.status_code == 303
    with app.app_context(), tenant_context(tenant):
        assert settings.get("session_idle_minutes") == 20
        assert settings.get("session_absolute_hours") == 8
        assert settings.get("mfa_required_roles") == ["manager"]
    changed = {e.entity_id for e in audit_entries(app, tenant, "settings.update", since)}
    assert changed == set(form)

    agent_email, _ = new_user(app, tenant)
    agent = client_from(app, tenant.slug)
    login(agent, agent_email)
    assert agent.post("/admin/security", data=form).status_code == 403
