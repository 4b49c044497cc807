"""The tenant's security settings: who must use two-factor authentication, session
timeouts, lockout, how long invitations last.

Reading needs `settings:read`, changing `settings:update`. Every field is checked
before anything is stored: one bad value is a 422 with the form and nothing changes.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_security import current_user

from core import settings
from core.db import db
from core.security import roles
from core.security.authz import has_permission, requires

bp = Blueprint("security_settings", __name__, url_prefix="/admin/security")

NUMBERS = (
    "session_idle_minutes",
    "session_absolute_hours",
    "lockout_threshold",
    "lockout_minutes",
    "invitation_hours",
)
ROLES_SETTING = "mfa_required_roles"


def _form(values: dict[str, Any], errors: dict[str, list[str]], status: int) -> ResponseReturnValue:
    return (
        render_template(
            "account/security_settings.html",
            values=values,
            errors=errors,
            roles=roles.list_roles(),
            labels={name: settings.CATALOGUE[name].label for name in (*NUMBERS, ROLES_SETTING)},
            numbers=NUMBERS,
            can_update=has_permission(current_user, "settings:update"),
        ),
        status,
    )


@bp.get("")
@requires("settings:read")
def show() -> ResponseReturnValue:
    return _form(settings.values(), {}, 200)


@bp.post("")
@requires("settings:update")
def update() -> ResponseReturnValue:
    submitted: dict[str, Any] = {name: request.form.get(name, "").strip() for name in NUMBERS}
    submitted[ROLES_SETTING] = request.form.getlist(ROLES_SETTING)
    known = {role.name for role in roles.list_roles()}
    errors: dict[str, list[str]] = {}
    checked: dict[str, Any] = {}
    for name, value in submitted.items():
        try:
            checked[name] = settings.check(name, value)
        except settings.SettingInvalid as exc:
            errors[name] = [exc.message[:1].upper() + exc.message[1:] + "."]
    unknown = set(submitted[ROLES_SETTING]) - known
    if unknown:
        errors[ROLES_SETTING] = ["Unknown roles: " + ", ".join(sorted(unknown)) + "."]
    if errors:
        return _form(submitted, errors, 422)
    for name, value in checked.items():
        settings.set(name, value)
    db.session.commit()
    flash(
        "Security settings saved. Session timeouts apply to sessions that start from now.",
        "success",
    )
    return redirect(url_for("security_settings.show"), 303)
