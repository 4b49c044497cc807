"""Your own account: second factors, password, and "log out everywhere".

Changing the password, setting up the authenticator app, security keys and recovery
codes are Flask-Security's pages (in our layout); this page links them together.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template
from flask.typing import ResponseReturnValue
from flask_security import current_user, logout_user, url_for_security

from core.db import db
from core.security import accounts, sessions
from core.security.authz import login_only

bp = Blueprint("account", __name__, url_prefix="/account")


@bp.get("")
@login_only
def profile() -> ResponseReturnValue:
    user = current_user
    return render_template(
        "account/profile.html",
        user=user,
        authenticator=bool(user.tf_primary_method),
        keys=[key for key in user.webauthn if key.usage == "secondary"],
        recovery_codes=len(user.mf_recovery_codes or []),
        mfa_required=accounts.mfa_required(user),
        active_sessions=sessions.active_count(user.fs_uniquifier),
    )


@bp.post("/logout-everywhere")
@login_only
def logout_everywhere() -> ResponseReturnValue:
    ended = accounts.logout_everywhere(current_user._get_current_object())
    db.session.commit()
    logout_user()
    flash(
        f"You are logged out everywhere ({ended} session{'s' if ended != 1 else ''}). "
        "Log in again.",
        "info",
    )
    return redirect(url_for_security("login"), 303)
