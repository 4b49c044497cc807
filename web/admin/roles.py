"""Roles screens: every role with its permissions, a grid to edit them, new roles.

Reading needs `settings:read`, changing needs `settings:update`. The rules (the
built-in roles stay, the admin role keeps its settings permissions, nobody grants
beyond what they hold, the tenant never loses its last manager) live in
core.security.roles; a broken one is a 422 with the form, and nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_security import current_user

from core.db import db
from core.security import roles
from core.security.authz import has_permission, requires
from core.security.models import Role
from core.security.permissions import CRUD, MODULES, PORTAL, SPECIAL
from web.rendering import wants_fragment

bp = Blueprint("roles", __name__, url_prefix="/admin/roles")


@dataclass(frozen=True)
class Grid:
    """The checkbox grid: modules x operations, then the special permissions."""

    modules: tuple[str, ...] = MODULES
    operations: tuple[str, ...] = CRUD
    specials: tuple[str, ...] = (*SPECIAL, PORTAL)


GRID = Grid()


def _role_or_404(name: str) -> Role:
    role = roles.get_role(name)
    if role is None:
        abort(404, description="No role has this name.")
    return role


def _submitted() -> tuple[list[str], str]:
    return request.form.getlist("permissions"), request.form.get("description", "")


def _context(**values: Any) -> dict[str, Any]:
    return {"grid": GRID, "can_edit": has_permission(current_user, "settings:update"), **values}


def _editor(
    role: Role,
    *,
    granted: set[str] | None = None,
    description: str | None = None,
    errors: roles.Errors | None = None,
) -> str:
    return render_template(
        "admin/roles_edit.html",
        **_context(
            role=role,
            granted=roles.permissions_of(role) if granted is None else granted,
            description=role.description if description is None else description,
            locked=roles.MANAGE if role.name == roles.ADMIN_ROLE else frozenset(),
            deletable=not roles.is_default(role),
            errors=errors or {},
        ),
    )


@bp.get("")
@requires("settings:read")
def index() -> ResponseReturnValue:
    return render_template(
        "admin/roles.html",
        **_context(
            roles=roles.list_roles(), counts=roles.user_counts(), is_default=roles.is_default
        ),
    )


def _new_form(values: dict[str, str], granted: set[str], errors: roles.Errors) -> str:
    return render_template(
        "admin/roles_new.html",
        **_context(values=values, granted=granted, locked=frozenset(), errors=errors),
    )


@bp.get("/new")
@requires("settings:update")
def new() -> ResponseReturnValue:
    return _new_form({"name": "", "description": ""}, set(), {})


@bp.post("")
@requires("settings:update")
def create() -> ResponseReturnValue:
    permissions, description = _submitted()
    name = request.form.get("name", "")
    try:
        role = roles.create_role(name, description, permissions, by=current_user)
    except roles.RoleInvalid as exc:
        values = {"name": name, "description": description}
        return _new_form(values, set(permissions), exc.errors), 422
    db.session.commit()
    flash(f"Role {role.name} created.", "success")
    return redirect(url_for("roles.show", name=role.name), 303)


@bp.get("/<name>")
@requires("settings:read")
def show(name: str) -> ResponseReturnValue:
    return _editor(_role_or_404(name))


@bp.post("/<name>")
@requires("settings:update")
def update(name: str) -> ResponseReturnValue:
    role = _role_or_404(name)
    permissions, description = _submitted()
    try:
        roles.update_role(role, permissions=permissions, description=description, by=current_user)
    except roles.RoleInvalid as exc:
        return _editor(
            role, granted=set(permissions), description=description, errors=exc.errors
        ), 422
    db.session.commit()
    flash(f"Role {role.name} saved.", "success")
    if wants_fragment():
        return _editor(role)
    return redirect(url_for("roles.show", name=role.name), 303)


@bp.post("/<name>/delete")
@requires("settings:update")
def delete(name: str) -> ResponseReturnValue:
    role = _role_or_404(name)
    try:
        roles.delete_role(role)
    except roles.RoleInvalid as exc:
        return _editor(role, errors=exc.errors), 422
    db.session.commit()
    flash(f"Role {name} deleted.", "success")
    if wants_fragment():
        # htmx loads the list as a page of its own (the flash shows there).
        response = current_app.make_response(("", 204))
        response.headers["HX-Redirect"] = url_for("roles.index")
        return response
    return redirect(url_for("roles.index"), 303)
