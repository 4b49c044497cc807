"""The customer portal on the brokerage's host: a customer's own policies, their
versions, and their renewal offers to accept or decline. Also the page an invitation
to the portal opens, and the staff action that sends one.

Every portal view needs `portal:access` (the `customer` role); what it shows is
narrowed to the customer the user is by the reach rules (core.policies.rules,
core.customers.portal), so another customer's policy is 404, as for staff.

- `GET /portal`: "My policies".
- `GET /portal/policies/<id>`: a policy with its versions and renewal offers.
- `POST /portal/renewal-offers/<id>/accept|decline`.
- `GET|POST /portal/join/<token>` (public, like any invitation link): choose a
  password; the account is created and linked to the customer in one transaction.
- `POST /customers/<id>/portal-invitation` (staff, `customers:update`): invite the
  customer at their email on file (or `email` from the form).
"""

from __future__ import annotations

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_security import url_for_security
from werkzeug.exceptions import Conflict

from core.customers import portal
from core.db import db
from core.hookspecs import MenuItem
from core.policies import queries, renewals
from core.policies.lifecycle import IllegalTransition
from core.policies.rules import PolicyInvalid
from core.security.accounts import AccountInvalid, InvitationNotSent, InvitationUnusable
from core.security.authz import public, requires
from core.security.permissions import PORTAL
from web import hosts, menu
from web.errors import ValidationFailed

bp = Blueprint("portal", __name__)


@bp.get("/portal")
@requires(PORTAL)
def policies() -> ResponseReturnValue:
    page = queries.list_policies(queries.Filters(), limit=queries.PAGE_SIZE_MAX)
    return render_template(
        "portal/policies.html",
        customer=portal.customer_of(),
        policies=page.items,
        codes=queries.line_codes(),
    )


@bp.get("/portal/policies/<int:policy_id>")
@requires(PORTAL)
def policy(policy_id: int) -> ResponseReturnValue:
    found, versions, offers = queries.detail(policy_id)
    return render_template(
        "portal/policy.html",
        policy=found,
        versions=versions,
        offers=offers,
        describe=renewals.describe,
        product=queries.line_codes().get(found.product_id, ""),
    )


def _decided(offer_id: int, accept: bool) -> ResponseReturnValue:
    try:
        if accept:
            renewed = renewals.accept(offer_id)
            flash(f"Thank you: your policy is renewed as {renewed.number}.", "success")
            return redirect(url_for("portal.policy", policy_id=renewed.id), 303)
        offer = renewals.decline(offer_id)
    except PolicyInvalid:
        raise Conflict(
            "This renewal cannot be completed online: your broker will contact you."
        ) from None
    except IllegalTransition as exc:
        raise Conflict(exc.message) from None
    flash("You declined the renewal: your policy ends with its term.", "success")
    return redirect(url_for("portal.policy", policy_id=offer.policy_id), 303)


@bp.post("/portal/renewal-offers/<int:offer_id>/accept")
@requires(PORTAL)
def accept_offer(offer_id: int) -> ResponseReturnValue:
    return _decided(offer_id, accept=True)


@bp.post("/portal/renewal-offers/<int:offer_id>/decline")
@requires(PORTAL)
def decline_offer(offer_id: int) -> ResponseReturnValue:
    return _decided(offer_id, accept=False)


# --- Joining --------------------------------------------------------------------------


def _unusable(exc: InvitationUnusable) -> ResponseReturnValue:
    status = 410 if exc.gone else 404
    return render_template("account/invitation_unusable.html", message=str(exc)), status


@bp.get("/portal/join/<token>")
@public
def join_form(token: str) -> ResponseReturnValue:
    try:
        invitation, _ = portal.portal_invitation(token)
    except InvitationUnusable as exc:
        return _unusable(exc)
    return render_template("portal/join.html", invitation=invitation, token=token, errors={})


@bp.post("/portal/join/<token>")
@public
def join(token: str) -> ResponseReturnValue:
    try:
        user = portal.join(
            token, request.form.get("password", ""), request.form.get("password_confirm", "")
        )
    except InvitationUnusable as exc:
        db.session.rollback()
        return _unusable(exc)
    except AccountInvalid as exc:
        db.session.rollback()
        invitation, _ = portal.portal_invitation(token)
        return (
            render_template(
                "portal/join.html", invitation=invitation, token=token, errors=exc.errors
            ),
            422,
        )
    db.session.commit()
    flash(f"Your account is ready. Log in as {user.email} to see your policies.", "success")
    return redirect(url_for_security("login"), 303)


# --- Staff: inviting a customer -------------------------------------------------------


@bp.post("/customers/<int:customer_id>/portal-invitation")
@requires(portal.INVITE_PERMISSION)
def invite(customer_id: int) -> ResponseReturnValue:
    try:
        invitation = portal.invite(customer_id, request.form.get("email") or None)
    except AccountInvalid as exc:
        db.session.rollback()
        message = " ".join(m for v in exc.errors.values() for m in v)
        raise ValidationFailed(exc.errors, message) from None
    except InvitationNotSent:
        db.session.rollback()
        raise Conflict("The invitation email could not be sent; nothing was recorded.") from None
    db.session.commit()
    flash(f"Portal invitation sent to {invitation.email}.", "success")
    return redirect(url_for("customers.show", customer_id=customer_id), 303)


def init_app(app: Flask) -> None:
    hosts.tenant_only(app, bp.name)
    app.register_blueprint(bp)
    menu.add_item(app, MenuItem("My policies", "portal.policies", permission=PORTAL, order=5))
