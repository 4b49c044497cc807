"""The roles screen: admins list roles, edit their permissions on a grid, create roles.

Reading needs settings:read, changing settings:update. Every refused change is a 422
with the form and writes nothing (no role change, no audit entry); every accepted one
is audited with what changed.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import select

from core.db import db
from core.security import roles
from core.security.models import Role, User
from core.security.permissions import DEFAULT_ROLES
from core.tenancy import Tenant, tenant_context
from tests.conftest import HostClient
from tests.security.conftest import audit_entries, create_user, last_audit_id, sign_in

HTMX = {"HX-Request": "true"}


def _permissions(app: Flask, tenant: Tenant, name: str) -> list[str] | None:
    with app.app_context(), tenant_context(tenant):
        role = db.session.scalars(select(Role).where(Role.name == name)).one_or_none()
        return None if role is None else sorted(role.permissions or [])


def _checked(page: str) -> set[str]:
    return set(re.findall(r'name="permissions" value="([^"]+)" aria-label="[^"]+" checked', page))


@pytest.fixture
def made(app: Flask, alpha: Tenant) -> Iterator[list[str]]:
    """Names of roles a test creates; they are deleted afterwards."""
    names: list[str] = []
    yield names
    with app.app_context(), tenant_context(alpha):
        for role in db.session.scalars(select(Role).where(Role.name.in_(names))):
            db.session.delete(role)
        db.session.commit()


def _new_role(app: Flask, alpha: Tenant, made: list[str], permissions: list[str]) -> str:
    name = f"r-{uuid.uuid4().hex[:8]}"
    with app.app_context(), tenant_context(alpha):
        db.session.add(Role(name=name, permissions=permissions))
        db.session.commit()
    made.append(name)
    return name


def _user_with(app: Flask, alpha: Tenant, made: list[str], permissions: list[str]) -> HostClient:
    role = _new_role(app, alpha, made, permissions)
    email = f"{role}@alpha.example.com"
    create_user(app, alpha, email, [role])
    return sign_in(app, "alpha", email)


@pytest.fixture
def admin(app: Flask, alpha: Tenant) -> HostClient:
    return sign_in(app, "alpha", "admin@alpha.example.com")


# --- reading -----------------------------------------------------------------------


def test_admins_see_every_role_with_its_permissions(admin: HostClient) -> None:
    page = admin.get("/admin/roles")
    assert page.status_code == 200
    for name in DEFAULT_ROLES:
        assert f'id="role-{name}"' in page.text
    customer = page.text.split('id="role-customer"')[1].split("</tr>")[0]
    assert "portal:access" in customer
    assert 'href="/admin/roles/new"' in page.text
    assert ">Roles</a>" in admin.get("/").text  # the navigation entry


def test_the_grid_shows_a_roles_grants(admin: HostClient) -> None:
    page = admin.get("/admin/roles/agent")
    assert page.status_code == 200
    assert _checked(page.text) == DEFAULT_ROLES["agent"]
    assert "Delete this role" not in page.text  # built in
    assert admin.get("/admin/roles/no-such-role").status_code == 404


def test_read_only_without_settings_update(app: Flask, alpha: Tenant, made: list[str]) -> None:
    viewer = _user_with(app, alpha, made, ["settings:read"])
    listing = viewer.get("/admin/roles")
    assert listing.status_code == 200
    assert 'href="/admin/roles/new"' not in listing.text
    page = viewer.get("/admin/roles/manager")
    assert page.status_code == 200
    assert "<button" not in page.text.split('id="role-editor"')[1].split("</article>")[0]
    assert re.search(
        r'value="customers:read" aria-label="customers:read" checked disabled', page.text
    )

    before = _permissions(app, alpha, "manager")
    assert viewer.post("/admin/roles/manager", data={"permissions": []}).status_code == 403
    assert viewer.get("/admin/roles/new").status_code == 403
    assert _permissions(app, alpha, "manager") == before


def test_the_menu_entry_shows_to_holders_only(app: Flask, alpha: Tenant, made: list[str]) -> None:
    agent = _user_with(app, alpha, made, ["customers:read"])
    assert ">Roles</a>" not in agent.get("/").text
    assert agent.get("/admin/roles").status_code == 403


# --- creating and editing ------------------------------------------------------------


def test_creating_then_editing_a_role_is_audited(
    app: Flask, alpha: Tenant, admin: HostClient, made: list[str]
) -> None:
    since = last_audit_id(app, alpha)
    made.append("claims-desk")
    created = admin.post(
        "/admin/roles",
        data={
            "name": "claims-desk",
            "description": "Handles claims",
            "permissions": ["claims:read", "claims:approve"],
        },
    )
    assert created.status_code == 303
    assert created.headers["Location"] == "/admin/roles/claims-desk"
    assert _permissions(app, alpha, "claims-desk") == ["claims:approve", "claims:read"]
    (create,) = audit_entries(app, alpha, "roles.create", since)
    assert create.entity == "role"
    assert create.changes["permissions"] == {"after": ["claims:approve", "claims:read"]}

    saved = admin.post(
        "/admin/roles/claims-desk",
        data={"description": "Handles claims", "permissions": ["claims:read", "claims:update"]},
        headers=HTMX,
    )
    assert saved.status_code == 200
    assert "<html" not in saved.text and 'id="role-editor"' in saved.text  # a fragment
    assert _checked(saved.text) == {"claims:read", "claims:update"}
    assert "Role claims-desk saved." in saved.text
    assert _permissions(app, alpha, "claims-desk") == ["claims:read", "claims:update"]
    (update,) = audit_entries(app, alpha, "roles.update", since)
    assert update.entity_id == create.entity_id
    assert update.changes == {
        "permissions": {
            "before": ["claims:approve", "claims:read"],
            "after": ["claims:read", "claims:update"],
        }
    }

    # Without htmx, the browser is sent back to the page (post/redirect/get).
    plain = admin.post("/admin/roles/claims-desk", data={"permissions": ["claims:read"]})
    assert (plain.status_code, plain.headers["Location"]) == (303, "/admin/roles/claims-desk")


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"name": "Bad Name!", "permissions": ["claims:read"]}, "name"),
        ({"name": "admin", "permissions": ["claims:read"]}, "name"),
        ({"name": "x", "permissions": ["claims:read"]}, "name"),
        ({"name": "fine-name", "permissions": ["claims:read", "claims:fly"]}, "permissions"),
        ({"name": "fine-name", "description": "d" * 256, "permissions": []}, "description"),
    ],
)
def test_bad_new_roles_are_422_and_nothing_is_written(
    app: Flask, alpha: Tenant, admin: HostClient, form: dict, field: str
) -> None:
    since = last_audit_id(app, alpha)
    response = admin.post("/admin/roles", data=form)
    assert response.status_code == 422
    assert f'id="{field}-errors"' in response.text
    assert _permissions(app, alpha, "fine-name") is None
    assert audit_entries(app, alpha, "roles.create", since) == []


@pytest.mark.parametrize(
    ("role", "permissions", "message"),
    [
        ("admin", sorted(DEFAULT_ROLES["admin"] - {"settings:update"}), "keeps settings:read"),
        ("manager", ["customers:read", "customers:fly"], "Unknown permissions: customers:fly"),
    ],
)
def test_bad_edits_are_422_and_nothing_is_written(
    app: Flask, alpha: Tenant, admin: HostClient, role: str, permissions: list, message: str
) -> None:
    since = last_audit_id(app, alpha)
    before = _permissions(app, alpha, role)
    response = admin.post(f"/admin/roles/{role}", data={"permissions": permissions}, headers=HTMX)
    assert response.status_code == 422
    assert message in response.text
    assert 'id="permissions-errors"' in response.text
    # The form comes back as submitted, so nothing the admin ticked is lost.
    assert _checked(response.text) >= set(permissions) - {"customers:fly"}
    assert _permissions(app, alpha, role) == before
    assert audit_entries(app, alpha, "roles.update", since) == []


def test_the_admin_roles_settings_permissions_are_locked_on_the_grid(admin: HostClient) -> None:
    page = admin.get("/admin/roles/admin").text
    for permission in ("settings:read", "settings:update"):
        assert f'value="{permission}" aria-label="{permission}" checked disabled' in page
        assert f'<input type="hidden" name="permissions" value="{permission}">' in page


# --- deleting ------------------------------------------------------------------------


def test_built_in_roles_cannot_be_deleted(app: Flask, alpha: Tenant, admin: HostClient) -> None:
    for name in DEFAULT_ROLES:
        response = admin.post(f"/admin/roles/{name}/delete")
        assert response.status_code == 422
        assert "built in and cannot be deleted" in response.text
        assert _permissions(app, alpha, name) is not None


def test_deleting_a_role_takes_it_from_its_users(
    app: Flask, alpha: Tenant, admin: HostClient, made: list[str]
) -> None:
    name = _new_role(app, alpha, made, ["reports:read"])
    create_user(app, alpha, f"{name}@alpha.example.com", [name, "agent"])
    since = last_audit_id(app, alpha)
    assert "Delete this role" in admin.get(f"/admin/roles/{name}").text

    response = admin.post(f"/admin/roles/{name}/delete", headers=HTMX)
    assert (response.status_code, response.headers["HX-Redirect"]) == (204, "/admin/roles")
    assert _permissions(app, alpha, name) is None
    with app.app_context(), tenant_context(alpha):
        user = db.session.scalars(select(User).where(User.email == f"{name}@alpha.example.com"))
        assert [role.name for role in user.one().roles] == ["agent"]
    (deleted,) = audit_entries(app, alpha, "roles.delete", since)
    assert deleted.changes["permissions"] == {"before": ["reports:read"]}


# --- guards ----------------------------------------------------------------------------


def test_nobody_grants_beyond_what_they_hold(app: Flask, alpha: Tenant, made: list[str]) -> None:
    editor = _user_with(app, alpha, made, ["settings:read", "settings:update"])
    target = _new_role(app, alpha, made, ["customers:read"])

    beyond = editor.post(f"/admin/roles/{target}", data={"permissions": ["audit:read"]})
    assert beyond.status_code == 422
    assert "You cannot grant permissions you do not hold: audit:read." in beyond.text
    assert _permissions(app, alpha, target) == ["customers:read"]

    # Removing is always allowed, and so is the customer portal, which grants no staff access.
    allowed = editor.post(f"/admin/roles/{target}", data={"permissions": ["portal:access"]})
    assert allowed.status_code == 303
    assert _permissions(app, alpha, target) == ["portal:access"]


def test_the_tenant_cannot_lock_itself_out(alpha_db: None) -> None:
    managers = [
        user
        for user in db.session.scalars(select(User).where(User.active.is_(True)))
        if any(roles.permissions_of(role) >= roles.MANAGE for role in user.roles)
    ]
    assert managers
    *others, last = managers
    for user in others:
        roles.assign_roles(user, [])
    with pytest.raises(roles.RoleInvalid, match="Nobody active would be left"):
        roles.assign_roles(last, ["agent"])
    assert "admin" in [role.name for role in last.roles]  # the refused change is undone

    # The last manager may hold a role of the tenant's own that manages; that role then
    # keeps its settings permissions, and stays.
    deputy = roles.create_role("deputy", None, sorted(roles.MANAGE))
    roles.assign_roles(last, ["deputy"])
    with pytest.raises(roles.RoleInvalid, match="Nobody active would be left"):
        roles.update_role(deputy, permissions=["settings:read"], description=None)
    with pytest.raises(roles.RoleInvalid, match="Nobody active would be left"):
        roles.delete_role(deputy)
    assert roles.permissions_of(deputy) == roles.MANAGE
    assert [role.name for role in last.roles] == ["deputy"]

    roles.assign_roles(last, ["admin", "deputy"])
    roles.update_role(deputy, permissions=["settings:read"], description=None)
    assert roles.permissions_of(deputy) == {"settings:read"}
