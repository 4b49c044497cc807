"""The page an invitation link opens: the invited person chooses a password.

Anyone holding the link may use it (that is what it is for), once, before it
expires. An unknown link is a 404; a used, expired or withdrawn one a 410.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request
from flask.typing import ResponseReturnValue
from flask_security import url_for_security

from core.db import db
from core.security import accounts
from core.security.accounts import AccountInvalid, InvitationUnusable
from core.security.authz import public

bp = Blueprint("invitations", __name__, url_prefix="/invitations")


def _unusable(exc: InvitationUnusable) -> ResponseReturnValue:
    status = 410 if exc.gone else 404
    return render_template("account/invitation_unusable.html", message=str(exc)), status


@bp.get("/<token>")
@public
def show(token: str) -> ResponseReturnValue:
    try:
        invitation = accounts.pending_invitation(token)
    except InvitationUnusable as exc:
        return _unusable(exc)
    return render_template("account/accept.html", invitation=invitation, errors={})


@bp.post("/<token>")
@public
def accept(token: str) -> ResponseReturnValue:
    try:
        user = accounts.accept(
            token, request.form.get("password", ""), request.form.get("password_confirm", "")
        )
    except InvitationUnusable as exc:
        db.session.rollback()
        return _unusable(exc)
    except AccountInvalid as exc:
        db.session.rollback()
        invitation = accounts.pending_invitation(token)
        return render_template("account/accept.html", invitation=invitation, errors=exc.errors), 422
    db.session.commit()
    flash(f"Your account is ready. Log in as {user.email}.", "success")
    return redirect(url_for_security("login"), 303)
