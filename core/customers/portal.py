"""Customer portal accounts: which customer record a portal user is.

A customer signs in on the brokerage's host with the `customer` role (portal only).
`PortalAccount` links that user to exactly one customer, and the customer to at most
one user; the reach rules of policies (core.policies.rules) give a portal user their
own customer's policies and nothing else.

Staff invite a customer with `invite`: an ordinary invitation of
core.security.invitations with the `customer` role, plus a `PortalInvitation` row that
remembers for which customer it was made. The email's link opens the portal's join
page (web/portal.py), which creates the account and calls `join`: account and link
are written in one transaction, so there is never a portal user without a customer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import current_app
from flask_login import current_user
from sqlalchemy import ForeignKey, select
from sqlalchemy.orm import Mapped, mapped_column

from core import audit, notify, settings
from core.audit import AuditMixin
from core.customers import queries
from core.customers.models import Customer
from core.db import Base, db
from core.security import accounts, invitations
from core.security.accounts import AccountInvalid
from core.security.authz import authorize, has_permission
from core.security.invitations import Invitation
from core.security.models import Role, User
from core.security.permissions import PORTAL
from core.security.tokens import BearerUser
from core.tenancy import require_tenant

CUSTOMER_ROLE = "customer"
INVITE_PERMISSION = "customers:update"
JOIN_PATH = "/portal/join/"
# What tells staff from customers: staff read policies of a book, customers do not.
STAFF_PERMISSION = "policies:read"


class PortalAccount(AuditMixin, Base):
    """A portal user and the customer they are."""

    __tablename__ = "portal_accounts"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="RESTRICT"), unique=True
    )


class PortalInvitation(AuditMixin, Base):
    """The customer an invitation to the portal was made for."""

    __tablename__ = "portal_invitations"

    invitation_id: Mapped[int] = mapped_column(
        ForeignKey("invitations.id", ondelete="CASCADE"), primary_key=True
    )
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="RESTRICT"), index=True
    )


# --- Reading --------------------------------------------------------------------------


def _user_id(user: Any) -> int | None:
    """The id of a portal user (a User, or a bearer request's BearerUser, holding
    portal:access); None for anyone else, API clients included."""
    subject = current_user if user is None else user
    if not isinstance(subject, User | BearerUser) or not has_permission(subject, PORTAL):
        return None
    return subject.id


def is_portal_user(user: Any = None) -> bool:
    """A customer in the portal: a user holding portal:access but not policies:read
    (staff who also hold the portal permission keep their staff reach)."""
    subject = current_user if user is None else user
    return _user_id(subject) is not None and not has_permission(subject, STAFF_PERMISSION)


def own_customer_ids(user: Any = None) -> Any:
    """SQL: the customer the caller is, if they are a portal user (else no row)."""
    user_id = _user_id(user)
    return select(PortalAccount.customer_id).where(
        PortalAccount.user_id == (user_id if user_id is not None else -1)
    )


def customer_of(user: Any = None) -> Customer | None:
    """The customer record of a portal user; None for anyone else."""
    user_id = _user_id(user)
    if user_id is None:
        return None
    return db.session.scalar(
        select(Customer)
        .join(PortalAccount, PortalAccount.customer_id == Customer.id)
        .where(PortalAccount.user_id == user_id, Customer.is_active.is_(True))
    )


def account_for(customer_id: int) -> PortalAccount | None:
    return db.session.scalar(select(PortalAccount).where(PortalAccount.customer_id == customer_id))


# --- Inviting and joining -----------------------------------------------------------


def _join_url(token: str) -> str:
    tenant = require_tenant()
    config = current_app.config
    host = f"{tenant.slug}.{config['SERVER_NAME']}"
    return f"{config['PREFERRED_URL_SCHEME']}://{host}{JOIN_PATH}{token}"


def invite(customer_id: int, email: str | None = None, *, user: Any = None) -> Invitation:
    """Invite customer `customer_id` to the portal at `email` (default: their email on
    file) and send them the link. Raises AccountInvalid naming the field, OutOfReach
    (404) outside the caller's book, accounts.InvitationNotSent if the mail fails.
    Nothing is written unless the mail went. The caller commits."""
    authorize(INVITE_PERMISSION, user)
    customer = queries.get(customer_id, user)
    errors: dict[str, list[str]] = {}
    address = (email or customer.email or "").strip()
    if not address:
        errors["email"] = ["This customer has no email on file: give one."]
    else:
        try:
            address = accounts.normalise_email(address)
        except AccountInvalid as exc:
            errors |= exc.errors
        else:
            if accounts.find_by_email(address) is not None:
                errors["email"] = ["Someone with this address already has an account."]
    if account_for(customer.id) is not None:
        errors["customer_id"] = ["This customer already has a portal account."]
    role = db.session.scalar(select(Role).where(Role.name == CUSTOMER_ROLE))
    if role is None:
        errors["role"] = ["The brokerage has no customer role any more: an admin restores it."]
    if errors:
        raise AccountInvalid(errors)

    hours = int(settings.get("invitation_hours"))
    subject = current_user if user is None else user
    invitation, token = invitations.issue(
        address, role, hours=hours, invited_by_id=getattr(subject, "id", None)
    )
    db.session.add(PortalInvitation(invitation_id=invitation.id, customer_id=customer.id))
    audit.record(
        "customers.portal_invite",
        entity="customers",
        entity_id=customer.id,
        details={"invitation": invitation.id, "expires_at": invitation.expires_at},
    )
    tenant = require_tenant()
    body = (
        f"{tenant.name} invites you to its customer portal, where you can see your "
        "policies and answer renewal offers.\n\n"
        f"Choose your password here to open your account:\n{_join_url(token)}\n\n"
        f"The link works once and expires in {hours} hours. If you did not expect this "
        "invitation, ignore this email."
    )
    try:
        notify.send_email(address, f"Your {tenant.name} customer portal", body)
    except notify.DeliveryFailed as exc:
        raise accounts.InvitationNotSent(str(exc)) from exc
    return invitation


def portal_invitation(token: str) -> tuple[Invitation, PortalInvitation]:
    """The pending invitation of `token` and its customer; raises InvitationUnusable
    (also for an invitation that is not a portal one)."""
    invitation = accounts.pending_invitation(token)
    link = db.session.get(PortalInvitation, invitation.id)
    if link is None:
        raise accounts.InvitationUnusable("This invitation link is not valid.", gone=False)
    return invitation, link


def join(token: str, password: str, password_confirm: str) -> User:
    """Create the invited customer's account and link it to their customer record, in
    db.session (the caller commits). Raises InvitationUnusable or AccountInvalid."""
    _, link = portal_invitation(token)
    customer = db.session.get(Customer, link.customer_id)
    if customer is None or not customer.is_active:
        raise accounts.InvitationUnusable("This invitation was withdrawn. Ask for a new one.")
    if account_for(customer.id) is not None:
        raise accounts.InvitationUnusable("This customer already has a portal account. Log in.")
    user = accounts.accept(token, password, password_confirm)
    db.session.add(PortalAccount(user_id=user.id, customer_id=customer.id))
    with audit.acting_as(f"user:{user.id}"):
        audit.record(
            "customers.portal_join",
            entity="customers",
            entity_id=customer.id,
            details={"user": user.id, "at": datetime.now(UTC)},
        )
    db.session.flush()
    return user
