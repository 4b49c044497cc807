"""One authorization mechanism for screens, API endpoints and jobs.

Every view declares what it needs: `@requires("customers:read")`, `@login_only` for
what any signed-in user may do (their own profile), or `@public` for the few that
anyone may call (health, signup). `check_routes(app)` refuses to start an app with a
view that declares none of them (default deny). Jobs declare theirs on the job type
(`core.jobs.job_type(name, permission=...)`) and the same `authorize` checks it.

Outcomes, turned into responses by the web layer:
- nobody signed in -> `SignInRequired` (a 401: login redirect on screens, problem+json
  with `WWW-Authenticate: Bearer` under /api);
- signed in without the permission -> `Denied` (403), audited as `authz.denied`;
- an object outside the caller's reach -> 404 (core.security.scope).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps
from typing import Any, Literal, TypeVar

from flask import Flask, current_app, g, has_app_context, has_request_context, request
from flask_login import current_user
from werkzeug.exceptions import Unauthorized

from core.db import db
from core.security.permissions import ALL_PERMISSIONS

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

ACCESS_ATTR = "_pb_access"


@dataclass(frozen=True)
class Access:
    """What a view asks of its caller."""

    kind: Literal["public", "signed_in", "permissions"]
    permissions: tuple[str, ...] = ()


PUBLIC = Access("public")
SIGNED_IN = Access("signed_in")


class Denied(PermissionError):
    """The caller lacks a permission (403 for a signed-in user, 401/login otherwise)."""

    def __init__(self, permission: str) -> None:
        super().__init__(f"missing permission {permission}")
        self.permission = permission


class SignInRequired(Unauthorized):
    """Nobody is signed in (or the session or token is not valid on this host)."""

    description = "Sign in to continue."


def has_permission(user: Any, permission: str) -> bool:
    """True if `user` (a User, or an API principal with the same three attributes:
    `is_authenticated`, `active`, `has_permission`) holds `permission`."""
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    if not getattr(user, "active", False):
        return False
    return bool(user.has_permission(permission))


def _known(permission: str) -> str:
    if permission not in ALL_PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")
    return permission


def authorize(permission: str, user: Any = None) -> None:
    """Raise Denied unless `user` (default: the current user) holds `permission`.

    A signed-in caller's denial is written to the audit log in a transaction of its
    own, so it is kept even though the caller's work is rolled back.
    """
    _known(permission)
    subject = current_user if user is None else user
    if has_permission(subject, permission):
        return
    if subject is not None and getattr(subject, "is_authenticated", False):
        _record_denial(permission)
    raise Denied(permission)


def _signed_in() -> bool:
    return bool(current_user and current_user.is_authenticated)


def requires(*permissions: str) -> Callable[[F], F]:
    """Decorate a view: every permission is required."""
    if not permissions:
        raise ValueError("requires() needs at least one permission; use @login_only")
    for permission in permissions:
        _known(permission)

    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not _signed_in():
                raise SignInRequired()
            for permission in permissions:
                authorize(permission)
            return view(*args, **kwargs)

        setattr(guarded, ACCESS_ATTR, Access("permissions", tuple(permissions)))
        return guarded  # type: ignore[return-value]

    return decorate


def login_only(view: F) -> F:
    """A view any signed-in user of the tenant may use (their own profile, say)."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not _signed_in():
            raise SignInRequired()
        return view(*args, **kwargs)

    setattr(guarded, ACCESS_ATTR, SIGNED_IN)
    return guarded  # type: ignore[return-value]


def public(view: F) -> F:
    """Mark a view as open to anyone (it must do its own checks if any)."""
    setattr(view, ACCESS_ATTR, PUBLIC)
    return view


def access(view: Callable[..., Any]) -> Access | None:
    """What a view declared with the decorators above; None if it declared nothing."""
    return getattr(view, ACCESS_ATTR, None)


# Flask-Security's own views cannot carry our decorators; they guard themselves
# (`auth_required`, `anonymous_user_required`, a token in the URL). Those that must be
# reachable before signing in are how one signs in, recovers an account or completes a
# second factor; the others need a signed-in user.
SECURITY_VIEWS: dict[str, Access] = {
    **{
        name: PUBLIC
        for name in (
            "static",
            "login",
            "logout",
            "register",
            "send_login",
            "token_login",
            "send_confirmation",
            "confirm_email",
            "forgot_password",
            "reset_password",
            "recover_username",
            "change_email_confirm",
            "two_factor_setup",  # also the forced enrolment step, before login completes
            "two_factor_token_validation",
            "two_factor_rescue",
            "tf_select",
            "us_signin",
            "us_signin_send_code",
            "us_verify_link",
            "wan_signin",
            "wan_signin_response",
            "mf_recovery",
            "oauthstart",
            "oauthresponse",
            "refresh_token",
        )
    },
    **{
        name: SIGNED_IN
        for name in (
            "verify",
            "change_password",
            "change_email",
            "change_username",
            "two_factor_setup_validate",
            "us_setup",
            "us_setup_validate",
            "us_verify",
            "us_verify_send_code",
            "wan_register",
            "wan_register_response",
            "wan_delete",
            "wan_verify",
            "wan_verify_response",
            "mf_recovery_codes",
            "oauth_verify_start",
            "oauth_verify_response",
        )
    },
}


def security_endpoints(app: Flask) -> dict[str, Access]:
    """Flask-Security's registered endpoints that guard themselves, with their access."""
    blueprint = app.config["SECURITY_BLUEPRINT_NAME"]
    return {
        f"{blueprint}.{name}": found
        for name, found in SECURITY_VIEWS.items()
        if f"{blueprint}.{name}" in app.view_functions
    }


def route_access(app: Flask, endpoint: str) -> Access | None:
    """The access an endpoint asks for: declared on its view, or Flask-Security's own."""
    found = access(app.view_functions[endpoint])
    return found if found is not None else security_endpoints(app).get(endpoint)


def undeclared_endpoints(app: Flask, allow: frozenset[str] = frozenset()) -> list[str]:
    return sorted(
        endpoint
        for endpoint, view in app.view_functions.items()
        if endpoint not in allow and access(view) is None
    )


def check_routes(app: Flask, allow: frozenset[str] = frozenset()) -> None:
    """Default deny: refuse to start with a view that declares no permission.

    `allow` names endpoints that guard themselves (Flask-Security's own views).
    """
    missing = undeclared_endpoints(app, allow)
    if missing:
        raise RuntimeError(
            "views without a declared permission (use @requires, @login_only or @public): "
            + ", ".join(missing)
        )


# --- Auditing denials ------------------------------------------------------------------


@contextmanager
def own_transaction() -> Iterator[None]:
    """Run the block with a db.session of its own, committed at the end.

    Flask-SQLAlchemy scopes db.session to the app context, so a nested app context has
    a fresh session: what the block writes commits whatever the caller's transaction
    does next. `g` is carried over so the current user (and anything else the request
    set up) is the same inside.
    """
    outer = dict(vars(g)) if has_app_context() else {}
    with current_app.app_context():
        vars(g).update(outer)
        yield
        db.session.commit()


def _record_denial(permission: str) -> None:
    # Imported here: core.audit needs the user model, whose modules need this one.
    from core import audit

    details = {
        "permission": permission,
        "endpoint": request.endpoint if has_request_context() else None,
    }
    try:
        with own_transaction():
            audit.record("authz.denied", details=details)
    except Exception:
        # The caller is refused either way; an audit outage must not turn that into a 500.
        log.exception("could not write authz.denied for %s to the audit log", permission)
