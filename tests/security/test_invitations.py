"""Users and invitations: an admin invites by email (one-time, expiring link read from
the loopback SMTP server), assigns roles, deactivates; customers join the same way."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from core.db import db
from core.security import roles
from core.security.authz import has_permission
from core.security.invitations import Invitation
from core.security.models import User
from core.tenancy import Tenant, tenant_context
from tests import smtp
from tests.conftest import PASSWORD, host_client
from tests.security.conftest import audit_entries, create_user, last_audit_id

HTMX = {"HX-Request": "true"}
NEW_PASSWORD = "tulips in the harbour at dawn"


@pytest.fixture
def mailbox(app: Flask) -> Iterator[smtp.Mailbox]:
    with smtp.receiving(app) as box:
        yield box


def signed_in(app: Flask, slug: str, email: str) -> FlaskClient:
    client = host_client(app, slug)
    assert client.post("/login", data={"email": email, "password": PASSWORD}).status_code == 302
    return client


@pytest.fixture
def admin(app: Flask, alpha: Tenant) -> FlaskClient:
    return signed_in(app, "alpha", "admin@alpha.example.com")


def address() -> str:
    return f"new-{uuid.uuid4().hex[:8]}@example.com"


def invite(client: FlaskClient, email: str, role: str = "agent"):  # type: ignore[no-untyped-def]
    return client.post(
        "/admin/users/invitations", data={"email": email, "role": role}, headers=HTMX
    )


def link_for(mailbox: smtp.Mailbox, email: str) -> str:
    mail = mailbox.wait_for(email)
    (link,) = [u for u in smtp.links_in(mail) if "/invitations/" in u]
    return link


def path_of(link: str) -> str:
    assert link.startswith("http://alpha.localhost:5000/invitations/"), link
    return link.removeprefix("http://alpha.localhost:5000")


def accept(
    client: FlaskClient, path: str, password: str = NEW_PASSWORD, confirm: str | None = None
):  # type: ignore[no-untyped-def]
    return client.post(path, data={"password": password, "password_confirm": confirm or password})


def invitations_of(app: Flask, tenant: Tenant, email: str) -> list[Invitation]:
    with app.app_context(), tenant_context(tenant):
        found = list(db.session.scalars(select(Invitation).where(Invitation.email == email)))
        db.session.expunge_all()
        return found


def user_by_email(app: Flask, tenant: Tenant, email: str) -> User | None:
    with app.app_context(), tenant_context(tenant):
        user = db.session.scalar(select(User).where(func.lower(User.email) == email.lower()))
        if user is not None:
            user.role_names = sorted(r.name for r in user.roles)  # type: ignore[attr-defined]
            user.portal = has_permission(user, "portal:access")  # type: ignore[attr-defined]
            db.session.expunge(user)
        return user


def test_invitation_from_email_to_first_login(
    app: Flask, alpha: Tenant, admin: FlaskClient, mailbox: smtp.Mailbox
) -> None:
    email = address()
    since = last_audit_id(app, alpha)
    sent = invite(admin, email)
    assert sent.status_code == 200
    assert f"Invitation sent to {email}" in sent.text
    assert 'id="invitations"' in sent.text and email in sent.text

    mail = mailbox.wait_for(email)
    assert mail["Subject"] == "Your invitation to Alpha"
    link = link_for(mailbox, email)
    token = link.rsplit("/", 1)[1]
    (stored,) = invitations_of(app, alpha, email)
    # Only a digest of the token is kept.
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in stored.token_hash
    assert timedelta(hours=71) < stored.expires_at - datetime.now(UTC) <= timedelta(hours=72)

    visitor = host_client(app, "alpha")
    form = visitor.get(path_of(link))
    assert form.status_code == 200
    assert email in form.text

    weak = accept(visitor, path_of(link), "password1234")
    assert weak.status_code == 422
    assert "common password" in weak.text
    differ = accept(visitor, path_of(link), NEW_PASSWORD, "something else entirely")
    assert differ.status_code == 422
    assert "The two passwords differ." in differ.text
    assert user_by_email(app, alpha, email) is None  # nothing written
    assert invitations_of(app, alpha, email)[0].accepted_at is None

    done = accept(visitor, path_of(link))
    assert done.status_code == 303
    assert done.headers["Location"] == "/login"
    user = user_by_email(app, alpha, email)
    assert user is not None and user.active
    assert user.role_names == ["agent"]  # type: ignore[attr-defined]
    assert invitations_of(app, alpha, email)[0].user_id == user.id

    (invited,) = audit_entries(app, alpha, "users.invite", since)
    assert invited.changes["email"] == {"after": email}
    assert invited.changes["role"] == {"after": "agent"}
    (accepted,) = audit_entries(app, alpha, "users.accept", since)
    assert accepted.entity_id == str(user.id)
    assert accepted.actor == f"user:{user.id}"

    agent = host_client(app, "alpha")
    assert agent.post("/login", data={"email": email, "password": NEW_PASSWORD}).status_code == 302
    assert agent.get("/admin/users").status_code == 403


def test_a_link_works_once(app: Flask, alpha, admin, mailbox) -> None:
    email = address()
    invite(admin, email)
    path = path_of(link_for(mailbox, email))
    assert accept(host_client(app, "alpha"), path).status_code == 303
    again = accept(host_client(app, "alpha"), path, "another fine passphrase here")
    assert again.status_code == 410
    assert "already been used" in again.text
    assert host_client(app, "alpha").get(path).status_code == 410
    client = host_client(app, "alpha")
    assert client.post("/login", data={"email": email, "password": NEW_PASSWORD}).status_code == 302


def test_an_expired_link_is_refused(app: Flask, alpha, admin, mailbox) -> None:
    email = address()
    invite(admin, email)
    path = path_of(link_for(mailbox, email))
    with app.app_context(), tenant_context(alpha):
        db.session.execute(
            update(Invitation)
            .where(Invitation.email == email)
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
        db.session.commit()
    page = host_client(app, "alpha").get(path)
    assert page.status_code == 410
    assert "expired" in page.text
    assert accept(host_client(app, "alpha"), path).status_code == 410
    assert user_by_email(app, alpha, email) is None


def test_inviting_again_or_withdrawing_kills_the_earlier_link(app, alpha, admin, mailbox) -> None:
    email = address()
    invite(admin, email)
    first = path_of(link_for(mailbox, email))
    invite(admin, email)
    # Mail is sent within the request, so the second message is already here.
    second = path_of(link_for(mailbox, email))
    assert second != first
    assert host_client(app, "alpha").get(first).status_code == 410

    (pending,) = [i for i in invitations_of(app, alpha, email) if i.revoked_at is None]
    withdrawn = admin.post(f"/admin/users/invitations/{pending.id}/revoke", headers=HTMX)
    assert withdrawn.status_code == 200
    page = host_client(app, "alpha").get(second)
    assert page.status_code == 410
    assert "withdrawn" in page.text


@pytest.mark.parametrize(
    ("email", "role", "field", "message"),
    [
        ("not-an-address", "agent", "email", "Invalid email address"),
        (None, "no-such-role", "role", "Choose one of the roles offered."),
        ("admin@alpha.example.com", "agent", "email", "already has an account"),
    ],
)
def test_bad_invitations_are_422_and_write_and_send_nothing(
    app, alpha, admin, mailbox, email, role, field, message
) -> None:
    email = email or address()
    since = last_audit_id(app, alpha)
    response = invite(admin, email, role)
    assert response.status_code == 422
    assert message.lower() in response.text.lower()
    assert f'id="{field}"' in response.text and 'aria-invalid="true"' in response.text
    assert invitations_of(app, alpha, email) == []
    assert mailbox.messages == []
    assert audit_entries(app, alpha, "users.invite", since) == []


def test_a_mail_server_that_is_down_leaves_nothing(app, alpha, admin, monkeypatch) -> None:
    with smtp.receiving(app):
        # A port nobody listens on.
        monkeypatch.setitem(app.config, "SMTP_PORT", smtp._free_port())
        email = address()
        response = invite(admin, email)
    assert response.status_code == 503
    assert "could not be sent" in response.text
    assert invitations_of(app, alpha, email) == []


def test_only_user_managers_invite(app, alpha, role_users, mailbox) -> None:
    manager = signed_in(app, "alpha", role_users["manager", "alpha"].email)
    email = address()
    assert invite(manager, email).status_code == 403
    assert host_client(app, "alpha").post(
        "/admin/users/invitations", data={"email": email, "role": "agent"}
    ).status_code in (302, 401)
    assert invitations_of(app, alpha, email) == []


def test_nobody_invites_with_more_than_they_hold(app, alpha, mailbox) -> None:
    name = f"hr-{uuid.uuid4().hex[:6]}"
    with app.app_context(), tenant_context(alpha):
        roles.create_role(name, "People team", ["settings:read", "settings:update"])
        db.session.commit()
    email = f"{name}@alpha.example.com"
    create_user(app, alpha, email, [name])
    client = signed_in(app, "alpha", email)
    refused = invite(client, address(), "admin")
    assert refused.status_code == 422
    assert "permissions you do not hold" in refused.text
    assert invite(client, address(), "customer").status_code == 200


def test_an_alpha_link_is_unknown_on_betas_host(app, alpha, beta, admin, mailbox) -> None:
    email = address()
    invite(admin, email)
    path = path_of(link_for(mailbox, email))
    assert host_client(app, "beta").get(path).status_code == 404
    assert accept(host_client(app, "beta"), path).status_code == 404
    assert user_by_email(app, beta, email) is None
    assert user_by_email(app, alpha, email) is None


def test_customers_get_portal_accounts_by_invitation(app, alpha, admin, mailbox) -> None:
    email = address()
    assert invite(admin, email, "customer").status_code == 200
    assert accept(host_client(app, "alpha"), path_of(link_for(mailbox, email))).status_code == 303
    user = user_by_email(app, alpha, email)
    assert user is not None
    assert user.role_names == ["customer"]  # type: ignore[attr-defined]
    assert user.portal  # type: ignore[attr-defined]


# --- roles and deactivation -------------------------------------------------------------


def test_admin_assigns_roles(app, alpha, admin) -> None:
    email = address()
    user_id = create_user(app, alpha, email, ["agent"])
    since = last_audit_id(app, alpha)
    response = admin.post(
        f"/admin/users/{user_id}/roles", data={"roles": ["agent", "manager"]}, headers=HTMX
    )
    assert response.status_code == 200
    assert response.text.lstrip().startswith(f'<tr id="user-{user_id}">')
    assert user_by_email(app, alpha, email).role_names == ["agent", "manager"]  # type: ignore[union-attr]
    (entry,) = audit_entries(app, alpha, "roles.assign", since)
    assert entry.entity_id == str(user_id)

    empty = admin.post(f"/admin/users/{user_id}/roles", data={}, headers=HTMX)
    assert empty.status_code == 422
    assert "Choose at least one role." in empty.text
    assert user_by_email(app, alpha, email).role_names == ["agent", "manager"]  # type: ignore[union-attr]


def test_deactivated_users_cannot_log_in_and_lose_their_sessions(app, alpha, admin) -> None:
    email = address()
    user_id = create_user(app, alpha, email, ["agent"])
    their_session = signed_in(app, "alpha", email)
    since = last_audit_id(app, alpha)

    response = admin.post(f"/admin/users/{user_id}/deactivate", headers=HTMX)
    assert response.status_code == 200
    assert "Deactivated" in response.text
    assert their_session.get("/account").status_code == 302
    refused = host_client(app, "alpha").post("/login", data={"email": email, "password": PASSWORD})
    assert refused.status_code == 422
    (entry,) = audit_entries(app, alpha, "users.deactivate", since)
    assert entry.entity_id == str(user_id)
    assert audit_entries(app, alpha, "auth.login_failed", since)[-1].details["reason"] == (
        "deactivated"
    )


def test_admins_cannot_deactivate_themselves(app, alpha, admin) -> None:
    with app.app_context(), tenant_context(alpha):
        me = db.session.scalar(select(User.id).where(User.email == "admin@alpha.example.com"))
    response = admin.post(f"/admin/users/{me}/deactivate", headers=HTMX)
    assert response.status_code == 422
    assert "cannot deactivate your own account" in response.text
    assert user_by_email(app, alpha, "admin@alpha.example.com").active  # type: ignore[union-attr]


def test_unknown_users_are_404(app, alpha, admin) -> None:
    with app.app_context(), tenant_context(alpha):
        missing = (db.session.scalar(select(func.max(User.id))) or 0) + 1000
    for action in ("deactivate", "unlock", "roles"):
        assert admin.post(f"/admin/users/{missing}/{action}").status_code == 404
