"""Policy screens: bind a quote, the policy page (versions, endorse, cancel, renewal
offer), the agent's book of policies, and a customer's policies as a fragment for the
customer page's Policies tab.

- `GET|POST /quotes/<id>/bind` (`policies.bind_form`, `policies.bind`): the quote page
  posts here. A line that asks declarations (term life) gets the form with its
  questions first; then the policy is bound and its page opens.
- `GET /policies`: the caller's book, newest first, filtered by state, keyset pages.
- `GET /policies/<id>`: number, state, dates, premium, every version, and the forms
  the state allows (issue, endorse, cancel, answer the renewal offer).
- `GET /customers/<id>/policies`: the customer's policies, a fragment.
- `POST /policies/rerate`, `GET /policies/rerating/<job id>`: re-rate a product's book
  (an RQ job on the `bulk` queue) and read its report once it is done.

Rules, reach and money live in core.policies; bad input answers 422 with the form and
its errors, a change the state does not allow 409, out of reach 404.
"""

from __future__ import annotations

import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import Conflict, NotFound

from core import jobs
from core.customers import queries as customer_queries
from core.db import db
from core.hookspecs import MenuItem
from core.money import format_amount
from core.policies import (
    lifecycle,  # noqa: F401  (registers the expiry job)
    operations,
    queries,
    quotes,
    renewals,
    rerating,
    rules,
)
from core.policies.lifecycle import IllegalTransition
from core.policies.models import CANCELLED, FREQUENCIES, IN_FORCE, POLICY_STATES, Quote
from core.policies.rules import PolicyInvalid
from core.policies.versions import current_version
from core.products import lines
from core.products import queries as product_queries
from core.security.authz import requires
from web import hosts, menu, progress
from web.errors import ValidationFailed

bp = Blueprint("policies", __name__)

RISK_PREFIX = "risk."
DECLARATION_PREFIX = "declarations."
CUSTOMER_POLICIES_MAX = 50


def amount(value: Any) -> str:
    """A decimal amount (Decimal or decimal string) as 14,391.12."""
    try:
        return format_amount(Decimal(str(value)))
    except (InvalidOperation, TypeError):
        return str(value)


def _conflict(exc: IllegalTransition) -> Conflict:
    return Conflict(exc.message)


# --- Bind -----------------------------------------------------------------------------


def _bind_page(quote: Quote, values: dict[str, Any], errors: rules.Errors, status: int = 200):
    customer = customer_queries.brief(customer_queries.get(quote.customer_id))
    return (
        render_template(
            "policies/bind.html",
            quote=quote,
            customer=customer,
            product=product_queries.product(quote.product_id),
            declarations=rules.declarations_for(quote.line_code),
            frequencies=FREQUENCIES,
            values=values,
            errors=errors,
        ),
        status,
    )


@bp.get("/quotes/<int:quote_id>/bind")
@requires("policies:create")
def bind_form(quote_id: int) -> ResponseReturnValue:
    quote = quotes.get_quote(quote_id)
    return _bind_page(quote, {"payment_frequency": "annual"}, {})


@bp.post("/quotes/<int:quote_id>/bind")
@requires("policies:create")
def bind(quote_id: int) -> ResponseReturnValue:
    """Bind; a first post without the declarations a line asks shows their form."""
    quote = quotes.get_quote(quote_id)
    form = request.form
    asked = rules.declarations_for(quote.line_code)
    if asked and form.get("declared") != "1":
        return _bind_page(quote, {"payment_frequency": form.get("payment_frequency", "annual")}, {})
    answers = {name: form.get(DECLARATION_PREFIX + name) == "yes" for name, _ in asked}
    try:
        policy = operations.bind(
            quote.id,
            payment_frequency=form.get("payment_frequency") or "annual",
            declarations=answers if asked else None,
        )
    except PolicyInvalid as exc:
        return _bind_page(quote, form.to_dict(), exc.errors, 422)
    except IllegalTransition as exc:
        raise _conflict(exc) from None
    flash("Policy bound. Issue it to give it its number.", "success")
    return redirect(url_for("policies.show", policy_id=policy.id), 303)


# --- The book -------------------------------------------------------------------------


@bp.get("/policies")
@requires("policies:read")
def index() -> ResponseReturnValue:
    state = request.args.get("state") or None
    try:
        page = queries.list_policies(
            queries.Filters(state=state if state in POLICY_STATES else None),
            cursor=request.args.get("cursor") or None,
        )
    except PolicyInvalid as exc:
        raise ValidationFailed(exc.errors, "This page address is not valid.") from None
    return render_template(
        "policies/index.html",
        policies=page.items,
        names=queries.customer_names({p.customer_id for p in page.items}),
        codes=queries.line_codes(),
        states=POLICY_STATES,
        state=state,
        products=product_queries.products(active_only=True),
        next_page=url_for("policies.index", state=state, cursor=page.next_cursor)
        if page.next_cursor
        else None,
    )


@bp.get("/customers/<int:customer_id>/policies")
@requires("policies:read")
def customer_policies(customer_id: int) -> ResponseReturnValue:
    """The customer's policies: the customer page's Policies tab loads this fragment."""
    customer = customer_queries.get(customer_id)
    page = queries.list_policies(
        queries.Filters(customer_id=customer.id), limit=CUSTOMER_POLICIES_MAX
    )
    return render_template(
        "policies/_customer_policies.html",
        customer=customer,
        policies=page.items,
        codes=queries.line_codes(),
        more=page.next_cursor is not None,
    )


# --- One policy -----------------------------------------------------------------------


def _risk_fields(line_code: str) -> list[Any]:
    declared = lines.get(line_code)
    return list(declared.line.risk_fields) if declared else []


def _page(
    policy_id: int,
    *,
    endorse_values: dict[str, Any] | None = None,
    endorse_errors: rules.Errors | None = None,
    cancel_values: dict[str, Any] | None = None,
    cancel_errors: rules.Errors | None = None,
    status: int = 200,
) -> tuple[str, int]:
    policy, versions, offers = queries.detail(policy_id)
    product = product_queries.product(policy.product_id)
    current = versions[-1]
    values = endorse_values or {RISK_PREFIX + k: v for k, v in current.risk.items()}
    return (
        render_template(
            "policies/show.html",
            policy=policy,
            product=product,
            customer=customer_queries.brief(customer_queries.get(policy.customer_id)),
            versions=versions,
            current=current,
            offers=offers,
            describe=renewals.describe,
            risk_fields=_risk_fields(product.line_code),
            may_issue=policy.state == "bound",
            may_endorse=policy.state == IN_FORCE,
            may_cancel=queries.may_move(policy, CANCELLED),
            endorse_values=values,
            endorse_errors=endorse_errors or {},
            cancel_values=cancel_values or {},
            cancel_errors=cancel_errors or {},
            risk_prefix=RISK_PREFIX,
        ),
        status,
    )


@bp.get("/policies/<int:policy_id>")
@requires("policies:read")
def show(policy_id: int) -> ResponseReturnValue:
    return _page(policy_id)


@bp.post("/policies/<int:policy_id>/issue")
@requires("policies:update")
def issue(policy_id: int) -> ResponseReturnValue:
    try:
        policy = operations.issue(policy_id)
    except IllegalTransition as exc:
        raise _conflict(exc) from None
    flash(f"Policy {policy.number} issued.", "success")
    return redirect(url_for("policies.show", policy_id=policy.id), 303)


def _risk_changes(policy_id: int, form: Any) -> dict[str, Any]:
    """The risk fields the form changed: a field emptied is removed (None)."""
    current = current_version(queries.get_policy(policy_id)).risk
    changes: dict[str, Any] = {}
    for key, value in form.items():
        if not key.startswith(RISK_PREFIX):
            continue
        name, text = key[len(RISK_PREFIX) :], value.strip()
        before = current.get(name)
        if text == ("" if before is None else str(before)):
            continue
        changes[name] = text if text else None
    return changes


@bp.post("/policies/<int:policy_id>/endorse")
@requires("policies:update")
def endorse(policy_id: int) -> ResponseReturnValue:
    form = request.form
    try:
        version = operations.endorse(
            policy_id,
            effective_from=form.get("effective_from"),
            risk_changes=_risk_changes(policy_id, form),
            reason=form.get("reason"),
        )
    except PolicyInvalid as exc:
        errors = {
            (RISK_PREFIX + k[len("risk_changes.") :] if k.startswith("risk_changes.") else k): v
            for k, v in exc.errors.items()
        }
        return _page(policy_id, endorse_values=form.to_dict(), endorse_errors=errors, status=422)
    except IllegalTransition as exc:
        raise _conflict(exc) from None
    flash(
        f"Version {version.version} from {version.effective_from.isoformat()}: "
        f"{amount(version.adjustment)} {version.currency} for the rest of the policy year.",
        "success",
    )
    return redirect(url_for("policies.show", policy_id=policy_id), 303)


@bp.post("/policies/<int:policy_id>/cancel")
@requires("policies:update")
def cancel(policy_id: int) -> ResponseReturnValue:
    form = request.form
    try:
        version = operations.cancel(
            policy_id, effective_on=form.get("effective_on"), reason=form.get("reason")
        )
    except PolicyInvalid as exc:
        return _page(policy_id, cancel_values=form.to_dict(), cancel_errors=exc.errors, status=422)
    except IllegalTransition as exc:
        raise _conflict(exc) from None
    flash(
        f"Cancelled from {version.effective_from.isoformat()}: "
        f"{amount(-version.adjustment)} {version.currency} to return.",
        "success",
    )
    return redirect(url_for("policies.show", policy_id=policy_id), 303)


@bp.post("/renewal-offers/<int:offer_id>/accept")
@requires("policies:update")
def accept_offer(offer_id: int) -> ResponseReturnValue:
    try:
        renewed = renewals.accept(offer_id)
    except PolicyInvalid as exc:
        message = " ".join(m for v in exc.errors.values() for m in v)
        raise ValidationFailed(exc.errors, message) from None
    except IllegalTransition as exc:
        raise _conflict(exc) from None
    flash(f"Renewed as policy {renewed.number}.", "success")
    return redirect(url_for("policies.show", policy_id=renewed.id), 303)


@bp.post("/renewal-offers/<int:offer_id>/decline")
@requires("policies:update")
def decline_offer(offer_id: int) -> ResponseReturnValue:
    try:
        offer = renewals.decline(offer_id)
    except IllegalTransition as exc:
        raise _conflict(exc) from None
    flash("Renewal declined: the policy ends with its term.", "success")
    return redirect(url_for("policies.show", policy_id=offer.policy_id), 303)


# --- Bulk re-rating ------------------------------------------------------------------------


@bp.post("/policies/rerate")
@requires(rerating.PERMISSION)
def rerate() -> ResponseReturnValue:
    """Start re-rating a product's book (core.policies.rerating), then show its report."""
    code = request.form.get("product", "")
    product = product_queries.by_line(code) if code else None
    if product is None:
        raise ValidationFailed({"product": ["Choose a product."]}, "Choose a product.")
    job = jobs.enqueue(rerating.RERATE_JOB, {"line_code": product.line_code}, queue="bulk")
    db.session.commit()
    return redirect(url_for("policies.rerate_report", job_id=job.id), 303)


@bp.get("/policies/rerating/<uuid:job_id>")
@requires(rerating.PERMISSION)
def rerate_report(job_id: uuid.UUID) -> ResponseReturnValue:
    job = jobs.get_job(job_id)
    if job is None or job.type != rerating.RERATE_JOB:
        raise NotFound("No re-rating has this address.")
    state = progress.from_job(job, url_for("jobs.status", job_id=job.id))
    return render_template("policies/rerating.html", job=job, state=state, report=job.result)


def init_app(app: Flask) -> None:
    hosts.tenant_only(app, bp.name)
    app.register_blueprint(bp)
    app.jinja_env.filters["policy_amount"] = amount
    menu.add_item(app, MenuItem("Policies", "policies.index", permission="policies:read", order=30))
