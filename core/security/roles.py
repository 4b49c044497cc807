"""Roles: create them, set their permissions, give them to users. Every write is audited.

The only code that writes roles and role assignments. Callers commit. A refused change
raises RoleInvalid and leaves nothing behind: input is checked before writing, and the
one rule that needs the written state (some active user can still manage the tenant)
is checked inside a savepoint that is rolled back when it fails. With the admin role
keeping its settings permissions, the tenant cannot lock itself out.

Pass `by` (the user making the change) from screens and the API: nobody may grant a
permission, or assign a role, beyond what they hold themselves.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import exists, func, select

from core import audit
from core.db import db
from core.security.authz import has_permission
from core.security.models import Role, User
from core.security.permissions import ALL_PERMISSIONS, DEFAULT_ROLES, PORTAL

NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{1,39}$")
DESCRIPTION_MAX = 255
ADMIN_ROLE = "admin"
# What the admin role never loses, and what some active user must always hold:
# together they are "able to manage roles and users", so the tenant cannot lock itself out.
MANAGE = frozenset({"settings:read", "settings:update"})
# Any user who may edit roles may let customers into the portal: it grants no staff
# access, and admins (who hold everything else) do not hold it themselves.
GRANTABLE_BY_ANY_EDITOR = frozenset({PORTAL})

Errors = dict[str, list[str]]


class RoleInvalid(ValueError):
    """A change that breaks a rule; `errors` maps each field to its messages."""

    def __init__(self, errors: Errors) -> None:
        super().__init__("; ".join(m for messages in errors.values() for m in messages))
        self.errors = errors


def is_default(role: Role) -> bool:
    return role.name in DEFAULT_ROLES


def permissions_of(role: Role) -> frozenset[str]:
    return frozenset(role.permissions or ())


def snapshot(role: Role) -> dict[str, Any]:
    """The audited state of a role."""
    return {
        "name": role.name,
        "description": role.description,
        "permissions": sorted(permissions_of(role)),
    }


def list_roles() -> list[Role]:
    """The default roles in their usual order, then the tenant's own by name."""
    order = {name: index for index, name in enumerate(DEFAULT_ROLES)}
    roles = db.session.scalars(select(Role)).all()
    return sorted(roles, key=lambda role: (order.get(role.name, len(order)), role.name))


def get_role(name: str) -> Role | None:
    return db.session.scalars(select(Role).where(Role.name == name)).one_or_none()


def user_counts() -> dict[int, int]:
    """Role id -> how many users hold it."""
    roles_users = Role.users.property.secondary
    rows = db.session.execute(
        select(roles_users.c.role_id, func.count()).group_by(roles_users.c.role_id)
    )
    return {role_id: count for role_id, count in rows}


def _held(by: Any) -> frozenset[str]:
    return frozenset(p for p in ALL_PERMISSIONS if has_permission(by, p))


def _check_permissions(
    role_name: str, wanted: Iterable[str], current: frozenset[str], by: Any, errors: Errors
) -> frozenset[str]:
    wanted = frozenset(wanted)
    unknown = wanted - ALL_PERMISSIONS
    if unknown:
        errors.setdefault("permissions", []).append(
            "Unknown permissions: " + ", ".join(sorted(unknown)) + "."
        )
    if role_name == ADMIN_ROLE and not wanted >= MANAGE:
        errors.setdefault("permissions", []).append(
            "The admin role keeps settings:read and settings:update, so someone can "
            "always manage the brokerage."
        )
    if by is not None:
        beyond = (wanted & ALL_PERMISSIONS) - current - _held(by) - GRANTABLE_BY_ANY_EDITOR
        if beyond:
            errors.setdefault("permissions", []).append(
                "You cannot grant permissions you do not hold: " + ", ".join(sorted(beyond)) + "."
            )
    return wanted


def _check_description(description: str | None, errors: Errors) -> str | None:
    description = (description or "").strip() or None
    if description is not None and len(description) > DESCRIPTION_MAX:
        errors.setdefault("description", []).append(
            f"Keep the description to {DESCRIPTION_MAX} characters."
        )
    return description


def create_role(
    name: str, description: str | None, permissions: Iterable[str], *, by: Any = None
) -> Role:
    errors: Errors = {}
    name = name.strip().lower()
    if not NAME_RE.fullmatch(name):
        errors["name"] = [
            "Use 2 to 40 lowercase letters, digits, '-' or '_', starting with a letter."
        ]
    elif get_role(name) is not None:
        errors["name"] = ["A role with this name exists."]
    description = _check_description(description, errors)
    wanted = _check_permissions(name, permissions, frozenset(), by, errors)
    if errors:
        raise RoleInvalid(errors)
    role = Role(name=name, description=description, permissions=sorted(wanted))
    db.session.add(role)
    db.session.flush()
    audit.record("roles.create", entity="role", entity_id=role.id, after=snapshot(role))
    return role


def update_role(
    role: Role, *, permissions: Iterable[str], description: str | None, by: Any = None
) -> Role:
    """Replace a role's permissions and description."""
    errors: Errors = {}
    before = snapshot(role)
    description = _check_description(description, errors)
    wanted = _check_permissions(role.name, permissions, permissions_of(role), by, errors)
    if errors:
        raise RoleInvalid(errors)
    if wanted == permissions_of(role) and description == role.description:
        return role
    with db.session.begin_nested():
        role.permissions = sorted(wanted)
        role.description = description
        _ensure_managed()
    audit.record(
        "roles.update", entity="role", entity_id=role.id, before=before, after=snapshot(role)
    )
    return role


def delete_role(role: Role) -> None:
    """Delete a tenant's own role; its users lose it. The default four stay."""
    if is_default(role):
        raise RoleInvalid({"name": [f"The {role.name} role is built in and cannot be deleted."]})
    before = snapshot(role)
    role_id = role.id
    with db.session.begin_nested():
        db.session.delete(role)
        _ensure_managed()
    audit.record("roles.delete", entity="role", entity_id=role_id, before=before)


def assign_roles(user: User, role_names: Iterable[str], *, by: Any = None) -> None:
    """Give `user` exactly the roles named."""
    names = sorted(set(role_names))
    roles = db.session.scalars(select(Role).where(Role.name.in_(names))).all()
    errors: Errors = {}
    missing = set(names) - {role.name for role in roles}
    if missing:
        errors["roles"] = ["Unknown roles: " + ", ".join(sorted(missing)) + "."]
    before = sorted(role.name for role in user.roles)
    if by is not None:
        added = [role for role in roles if role.name not in before]
        beyond = (
            frozenset().union(*(permissions_of(role) for role in added))
            - _held(by)
            - GRANTABLE_BY_ANY_EDITOR
        )
        if beyond:
            errors.setdefault("roles", []).append(
                "You cannot assign a role with permissions you do not hold: "
                + ", ".join(sorted(beyond))
                + "."
            )
    if errors:
        raise RoleInvalid(errors)
    if names == before:
        return
    with db.session.begin_nested():
        user.roles = list(roles)
        _ensure_managed()
    audit.record(
        "roles.assign",
        entity="user",
        entity_id=user.id,
        before={"roles": before},
        after={"roles": names},
    )


def _ensure_managed() -> None:
    """Refuse a change that leaves no active user able to manage roles and users.
    Runs inside the change's savepoint: raising rolls the change back."""
    db.session.flush()
    managing = [
        role.id for role in db.session.scalars(select(Role)) if permissions_of(role) >= MANAGE
    ]
    roles_users = Role.users.property.secondary
    someone = db.session.scalar(
        select(
            exists()
            .where(roles_users.c.role_id.in_(managing))
            .where(roles_users.c.user_id == User.id)
            .where(User.active.is_(True))
        )
    )
    if not someone:
        raise RoleInvalid(
            {"roles": ["Nobody active would be left able to manage roles and users."]}
        )
