"""Users of a tenant: invitations, roles, deactivation, lockout, sessions, MFA rules.

The only code that changes users (Flask-Security's own views aside). Each operation
adds its changes and its audit entry to db.session; the caller commits, so a refused
operation writes nothing. Failed sign-ins are the exception: the sign-in is refused
and its request rolled back, so their count and audit entries commit in a
transaction of their own.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, current_app
from flask_login import user_logged_in, user_logged_out
from flask_security import LoginForm
from flask_security.mail_util import EmailValidateException
from flask_security.proxies import _datastore, _security
from sqlalchemy import func, select
from sqlalchemy.orm.attributes import set_committed_value

from core import audit, notify, settings
from core.db import db
from core.security import invitations, passwords, roles, sessions
from core.security.authz import has_permission, own_transaction
from core.security.invitations import Invitation
from core.security.models import Role, User
from core.tenancy import require_tenant

LOCKED_MESSAGE = "This account is locked after too many failed sign-ins."


class AccountInvalid(ValueError):
    """The operation breaks a rule; `errors` maps form fields to messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


class InvitationUnusable(LookupError):
    """The invitation link is unknown, or (`gone`) used, revoked or expired."""

    def __init__(self, message: str, *, gone: bool = True) -> None:
        super().__init__(message)
        self.gone = gone


class InvitationNotSent(RuntimeError):
    """The invitation email could not be sent; nothing was recorded."""


# --- Reading ----------------------------------------------------------------------


def get_user(user_id: int) -> User | None:
    return db.session.get(User, user_id)


def users() -> list[User]:
    return list(db.session.scalars(select(User).order_by(func.lower(User.email))))


def find_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(func.lower(User.email) == email.lower()))


def normalise_email(email: str) -> str:
    """The address as accounts store it; raises AccountInvalid."""
    try:
        return _security.mail_util.validate(email.strip()).lower()
    except EmailValidateException as exc:
        raise AccountInvalid({"email": [exc.msg]}) from None


# --- Two-factor rules -------------------------------------------------------------


def mfa_required(user: User) -> bool:
    """Whether one of the user's roles is in the tenant's `mfa_required_roles`."""
    required = set(settings.get("mfa_required_roles"))
    return any(role.name in required for role in user.roles)


def mfa_enrolled(user: User) -> bool:
    """Whether the user has a second factor: an authenticator app or a security key."""
    return bool(_security.two_factor_plugins.get_setup_tf_methods(user))


# --- Sign-in failures and lockout ---------------------------------------------------


def _lock_expired(locked_at: datetime, now: datetime) -> bool:
    minutes = int(settings.get("lockout_minutes"))
    return bool(minutes) and locked_at + timedelta(minutes=minutes) <= now


def record_failed_login(user: User, method: str, *, second_factor: bool = False) -> None:
    """Count a failed credential (password, code or key) of `user` and lock the account
    at the tenant's threshold; both audited and committed at once."""
    threshold = int(settings.get("lockout_threshold"))
    with own_transaction():
        row = db.session.execute(
            select(User).where(User.id == user.id).with_for_update()
        ).scalar_one()
        now = datetime.now(UTC)
        if row.locked_at is not None and _lock_expired(row.locked_at, now):
            row.locked_at, row.failed_logins = None, 0
        row.failed_logins += 1
        audit.record(
            "auth.login_failed",
            entity="users",
            entity_id=row.id,
            details={
                "method": method,
                "second_factor": second_factor,
                "consecutive_failures": row.failed_logins,
            },
        )
        if row.locked_at is None and row.failed_logins >= threshold:
            row.locked_at = now
            audit.record(
                "auth.lockout",
                entity="users",
                entity_id=row.id,
                details={"consecutive_failures": row.failed_logins},
            )
        failures, locked_at = row.failed_logins, row.locked_at
    # What the database now says, without making the caller's copy of the user dirty.
    set_committed_value(user, "failed_logins", failures)
    set_committed_value(user, "locked_at", locked_at)


def is_locked(user: User, form_error: list[str] | None = None) -> bool:
    """Flask-Security's question after a correct password: is the account locked?"""
    if user.locked_at is None or _lock_expired(user.locked_at, datetime.now(UTC)):
        return False
    if form_error is not None:
        minutes = int(settings.get("lockout_minutes"))
        later = f" Try again in {minutes} minutes or" if minutes else ""
        form_error.append(f"{LOCKED_MESSAGE}{later} ask an administrator to unlock it.")
    return True


def _record_refused_login(email: str, reason: str, user: User | None) -> None:
    with own_transaction():
        audit.record(
            "auth.login_failed",
            entity="users",
            entity_id=user.id if user else None,
            details={"method": "password", "reason": reason, "email": email},
        )


class AuditedLoginForm(LoginForm):
    """Flask-Security's login form, also auditing the failures that it does not report
    through `track_failed_authn`: an unknown address, a deactivated or locked account.

    There is no "remember me": a session ends at the tenant's idle and absolute
    timeouts, and a long-lived remember cookie would outlive both."""

    remember = None

    def validate(self, **kwargs: Any) -> bool:
        if super().validate(**kwargs):
            return True
        email = (self.email.data or "").strip() if hasattr(self, "email") else ""
        if self.user is None and email:
            _record_refused_login(email, "unknown_user", None)
        elif self.user is not None and self.user_authenticated:
            reason = "deactivated" if not self.user.active else "locked"
            _record_refused_login(email, reason, self.user)
        return False


def _on_login(sender: Any, user: User, **_: Any) -> None:
    # A new session id for every login; a successful login ends the failure streak
    # (Flask-Security's login views commit the request's session after this).
    sessions.start(user.fs_uniquifier)
    if user.failed_logins or user.locked_at is not None:
        user.failed_logins, user.locked_at = 0, None


def _on_logout(sender: Any, user: Any, **_: Any) -> None:
    sessions.end()


def init_app(app: Flask) -> None:
    user_logged_in.connect(_on_login, app)
    user_logged_out.connect(_on_logout, app)


# --- Invitations ------------------------------------------------------------------


def _tenant_url(path: str) -> str:
    tenant = require_tenant()
    config = current_app.config
    return f"{config['PREFERRED_URL_SCHEME']}://{tenant.slug}.{config['SERVER_NAME']}{path}"


def _role(name: str, field: str = "role") -> Role:
    role = _datastore.find_role(name) if name else None
    if role is None:
        raise AccountInvalid({field: ["Choose one of the roles offered."]})
    return role


def invite(email: str, role_name: str, *, by: User | None) -> Invitation:
    """Invite `email` to join with `role_name`, emailing a one-time link; raises
    AccountInvalid for bad input and InvitationNotSent when the mail cannot go."""
    errors: dict[str, list[str]] = {}
    try:
        email = normalise_email(email)
    except AccountInvalid as exc:
        errors |= exc.errors
    else:
        if find_by_email(email) is not None:
            errors["email"] = ["Someone with this address already has an account."]
    try:
        role = _role(role_name)
    except AccountInvalid as exc:
        errors |= exc.errors
    else:
        beyond = _beyond(role, by)
        if beyond:
            errors["role"] = [
                "You cannot invite with a role whose permissions you do not hold: "
                + ", ".join(beyond)
                + "."
            ]
    if errors:
        raise AccountInvalid(errors)

    hours = int(settings.get("invitation_hours"))
    invitation, token = invitations.issue(
        email, role, hours=hours, invited_by_id=by.id if by else None
    )
    audit.record(
        "users.invite",
        entity="invitations",
        entity_id=invitation.id,
        after={"email": email, "role": role.name, "expires_at": invitation.expires_at},
    )
    tenant = require_tenant()
    link = _tenant_url(f"/invitations/{token}")
    body = (
        f"You have been invited to {tenant.name} on Power Buyer as {role.name}.\n\n"
        f"Choose your password here to create your account:\n{link}\n\n"
        f"The link works once and expires in {hours} hours. If you did not expect this "
        "invitation, ignore this email."
    )
    try:
        notify.send_email(email, f"Your invitation to {tenant.name}", body)
    except notify.DeliveryFailed as exc:
        raise InvitationNotSent(str(exc)) from exc
    return invitation


def pending_invitation(token: str) -> Invitation:
    """The pending invitation of `token`; raises InvitationUnusable."""
    invitation = invitations.find(token)
    if invitation is None:
        raise InvitationUnusable("This invitation link is not valid.", gone=False)
    status = invitation.status
    if status == invitations.ACCEPTED:
        raise InvitationUnusable("This invitation has already been used. Log in instead.")
    if status == invitations.EXPIRED:
        raise InvitationUnusable("This invitation has expired. Ask for a new one.")
    if status == invitations.REVOKED:
        raise InvitationUnusable("This invitation was withdrawn. Ask for a new one.")
    return invitation


def accept(token: str, password: str, password_confirm: str) -> User:
    """Create the invited account with `password`; raises InvitationUnusable or
    AccountInvalid (nothing written)."""
    invitation = pending_invitation(token)
    errors: dict[str, list[str]] = {}
    if password != password_confirm:
        errors["password_confirm"] = ["The two passwords differ."]
    try:
        password_hash = passwords.hash_new(password, email=invitation.email)
    except passwords.PasswordRejected as exc:
        errors["password"] = exc.messages
    if find_by_email(invitation.email) is not None:
        raise InvitationUnusable("Someone with this address already has an account. Log in.")
    if errors:
        raise AccountInvalid(errors)
    user = _datastore.create_user(
        email=invitation.email, password=password_hash, active=True, roles=[invitation.role]
    )
    db.session.flush()
    if not invitations.claim(invitation, user.id):
        raise InvitationUnusable("This invitation has already been used. Log in instead.")
    with audit.acting_as(f"user:{user.id}"):
        audit.record(
            "users.accept",
            entity="users",
            entity_id=user.id,
            after={"email": user.email, "roles": [invitation.role.name]},
            details={"invitation": invitation.id},
        )
    return user


def revoke_invitation(invitation_id: int) -> Invitation | None:
    invitation = invitations.revoke(invitation_id)
    if invitation is not None:
        audit.record(
            "users.invite_revoke",
            entity="invitations",
            entity_id=invitation.id,
            details={"email": invitation.email},
        )
    return invitation


# --- Roles, deactivation, unlocking -------------------------------------------------


def _beyond(role: Role, by: User | None) -> list[str]:
    """Permissions of `role` that `by` does not hold (nobody hands out more than they
    hold; the portal permission is free to give, as for role assignment)."""
    if by is None:
        return []
    extra = set(role.permissions or ()) - roles.GRANTABLE_BY_ANY_EDITOR
    return sorted(p for p in extra if not has_permission(by, p))


def _other_managers(user: User) -> bool:
    """Whether an active user other than `user` can still manage roles and users."""
    return any(
        other.id != user.id and other.active and all(has_permission(other, p) for p in roles.MANAGE)
        for other in users()
    )


def set_roles(user: User, role_names: Iterable[str], *, by: User | None) -> None:
    """Give `user` exactly `role_names` (core.security.roles audits it as
    roles.assign); raises AccountInvalid."""
    names = sorted(set(role_names))
    if not names:
        raise AccountInvalid({"roles": ["Choose at least one role."]})
    try:
        roles.assign_roles(user, names, by=by)
    except roles.RoleInvalid as exc:
        raise AccountInvalid(exc.errors) from None


def deactivate(user: User, *, by: User | None) -> None:
    """Deactivate `user`: no more sign-ins, and every session and token revoked."""
    if by is not None and by.id == user.id:
        raise AccountInvalid({"user": ["You cannot deactivate your own account."]})
    if not user.active:
        return
    if all(has_permission(user, p) for p in roles.MANAGE) and not _other_managers(user):
        raise AccountInvalid({"user": ["The last administrator cannot be deactivated."]})
    user.active = False
    _revoke_sessions(user)
    audit.record(
        "users.deactivate",
        entity="users",
        entity_id=user.id,
        before={"active": True},
        after={"active": False},
    )


def unlock(user: User) -> None:
    """Lift a lockout and forget the failure streak."""
    if user.locked_at is None and not user.failed_logins:
        return
    before = {"locked_at": user.locked_at, "failed_logins": user.failed_logins}
    user.locked_at, user.failed_logins = None, 0
    audit.record(
        "auth.unlock",
        entity="users",
        entity_id=user.id,
        before=before,
        after={"locked_at": None, "failed_logins": 0},
    )


def logout_everywhere(user: User) -> int:
    """End all of the user's sessions and invalidate their tokens; how many ended."""
    ended = _revoke_sessions(user)
    audit.record(
        "auth.logout_everywhere", entity="users", entity_id=user.id, details={"sessions": ended}
    )
    return ended


def _revoke_sessions(user: User) -> int:
    # A new fs_uniquifier invalidates every cookie, remember token and API token bound
    # to the old one; the registry is cleared too, so nothing waits for a timeout.
    old = user.fs_uniquifier
    _datastore.set_uniquifier(user)
    return sessions.revoke_all(old)
