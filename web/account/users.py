"""Users and invitations of the tenant: invite staff and customers by email, assign
roles, deactivate, lift lockouts.

Reading needs `settings:read`, changing needs `settings:update`. Rules live in
core.security.accounts (and core.security.roles for role assignment); a broken one
answers 422 with the form or the row and writes nothing. htmx requests get the part
of the page that changed; other requests the whole page, or a redirect after success.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_security import current_user

from core.db import db
from core.security import accounts, invitations, roles
from core.security.accounts import AccountInvalid, InvitationNotSent
from core.security.authz import has_permission, requires
from core.security.models import User
from web.rendering import wants_fragment

bp = Blueprint("users", __name__, url_prefix="/admin/users")


def _context(**extra: Any) -> dict[str, Any]:
    return {
        "users": accounts.users(),
        "roles": roles.list_roles(),
        "pending": invitations.pending(),
        "can_update": has_permission(current_user, "settings:update"),
        "invite_values": {},
        "invite_errors": {},
        "invite_sent": None,
        "row_errors": {},
        **extra,
    }


def _page(status: int = 200, **extra: Any) -> ResponseReturnValue:
    return render_template("account/users.html", **_context(**extra)), status


def _user_or_404(user_id: int) -> User:
    user = accounts.get_user(user_id)
    if user is None:
        abort(404, description="No user has this number.")
    return user


@bp.get("")
@requires("settings:read")
def index() -> ResponseReturnValue:
    return _page()


@bp.post("/invitations")
@requires("settings:update")
def invite() -> ResponseReturnValue:
    values = {name: request.form.get(name, "").strip() for name in ("email", "role")}
    try:
        invitation = accounts.invite(values["email"], values["role"], by=current_user)
    except AccountInvalid as exc:
        db.session.rollback()
        return _invitations(values, exc.errors, 422)
    except InvitationNotSent as exc:
        db.session.rollback()
        message = f"The invitation could not be sent ({exc}). Nothing was saved; try again."
        return _invitations(values, {"email": [message]}, 503)
    db.session.commit()
    if not wants_fragment():
        flash(f"Invitation sent to {invitation.email}.", "success")
        return redirect(url_for("users.index"), 303)
    return _invitations({}, {}, 200, sent=invitation.email)


def _invitations(
    values: dict[str, str], errors: dict[str, list[str]], status: int, sent: str | None = None
) -> ResponseReturnValue:
    context = _context(invite_values=values, invite_errors=errors, invite_sent=sent)
    if wants_fragment():
        return render_template("account/_invitations.html", **context), status
    return render_template("account/users.html", **context), status


@bp.post("/invitations/<int:invitation_id>/revoke")
@requires("settings:update")
def revoke(invitation_id: int) -> ResponseReturnValue:
    if accounts.revoke_invitation(invitation_id) is None:
        abort(404, description="No pending invitation has this number.")
    db.session.commit()
    if not wants_fragment():
        return redirect(url_for("users.index"), 303)
    return _invitations({}, {}, 200)


def _row_change(user_id: int, change: str) -> ResponseReturnValue:
    user = _user_or_404(user_id)
    try:
        if change == "roles":
            accounts.set_roles(user, request.form.getlist("roles"), by=current_user)
        elif change == "deactivate":
            accounts.deactivate(user, by=current_user)
        else:
            accounts.unlock(user)
    except AccountInvalid as exc:
        db.session.rollback()
        messages = [m for field in exc.errors.values() for m in field]
        user = _user_or_404(user_id)
        return _row(user, messages, 422)
    db.session.commit()
    if not wants_fragment():
        return redirect(url_for("users.index"), 303)
    return _row(user, [], 200)


def _row(user: User, messages: list[str], status: int) -> ResponseReturnValue:
    if wants_fragment():
        context = _context(row_errors={user.id: messages})
        return render_template("account/_user_row.html", user=user, **context), status
    return _page(status, row_errors={user.id: messages})


@bp.post("/<int:user_id>/roles")
@requires("settings:update")
def set_roles(user_id: int) -> ResponseReturnValue:
    return _row_change(user_id, "roles")


@bp.post("/<int:user_id>/deactivate")
@requires("settings:update")
def deactivate(user_id: int) -> ResponseReturnValue:
    return _row_change(user_id, "deactivate")


@bp.post("/<int:user_id>/unlock")
@requires("settings:update")
def unlock(user_id: int) -> ResponseReturnValue:
    return _row_change(user_id, "unlock")
