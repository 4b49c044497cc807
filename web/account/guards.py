"""Request guards for signed-in users of a tenant host.

- A session whose id is no longer registered (logged out elsewhere, idle or past its
  absolute timeout, the user deactivated) is signed out before the view runs, so the
  view sees an anonymous visitor and sends them to log in.
- A user whose role requires two-factor authentication (tenant setting
  `mfa_required_roles`) and who has no second factor yet is sent to set one up; only
  Flask-Security's own pages (setup, security keys, logout) stay reachable. Logging
  in already demands it (User.check_tf_required); this also catches a session that
  began before the role or the setting changed.
"""

from __future__ import annotations

from flask import Flask, current_app, flash, g, redirect, request, session
from flask.typing import ResponseReturnValue
from flask_security import current_user, logout_user, url_for_security

from core.security import accounts, sessions

API_PREFIX = "/api/"


def check_session() -> None:
    if g.get("tenant") is None or sessions.USER_ID not in session:
        return
    if not sessions.is_valid():
        logout_user()
        flash("Your session has ended. Log in again.", "info")


def require_enrolment() -> ResponseReturnValue | None:
    if g.get("tenant") is None or request.path.startswith(API_PREFIX):
        return None
    endpoint = request.endpoint or ""
    if request.blueprint == _security_blueprint() or endpoint.split(".")[-1] == "static":
        return None
    if not current_user.is_authenticated:
        return None
    if accounts.mfa_required(current_user) and not accounts.mfa_enrolled(current_user):
        flash("Your role requires two-factor authentication. Set it up to continue.", "info")
        return redirect(url_for_security("two_factor_setup"))
    return None


def _security_blueprint() -> str:
    return current_app.config["SECURITY_BLUEPRINT_NAME"]


def init_app(app: Flask) -> None:
    app.before_request(check_session)
    app.before_request(require_enrolment)
