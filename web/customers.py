"""Customers screens: search as you type, a customer's page with its activity and its
identity and credit checks (a form to record a manual check with an evidence file, and
the file's download), and the new-customer form with its duplicate warning. Rules,
reach and masking live in core.customers; these views parse forms and render (422 with
the form and its errors on bad input, nothing written).
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Flask,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from core import audit
from core.agents import queries as agent_queries
from core.customers import operations, queries, verification
from core.customers.models import CHANNELS, COMPANY, PERSON
from core.customers.rules import CustomerInvalid
from core.db import db
from core.hookspecs import MenuItem
from core.security.authz import requires
from web import hosts, menu
from web.errors import ValidationFailed
from web.rendering import wants_fragment

bp = Blueprint("customers", __name__, url_prefix="/customers")

RESULTS_ID = "customer-results"
TIMELINE_SIZE = 50
# The form's fields by kind: a company's form never sends a person's fields (hidden
# inputs keep their values when someone switches kind back and forth).
KIND_FIELDS = {
    PERSON: ("first_name", "last_name", "date_of_birth", "national_id"),
    COMPANY: ("company_name", "registration_number"),
}
COMMON_FIELDS = ("email", "phone", "preferred_channel", "notes")
# Future modules' tabs on a customer's page; each arrives with its module.
TABS = ("Bills", "Claims", "Documents")


def _wants_results_only() -> bool:
    return request.headers.get("HX-Request") == "true" and (
        request.headers.get("HX-Target") == RESULTS_ID
    )


@bp.get("")
@requires("customers:read")
def index() -> ResponseReturnValue:
    q = request.args.get("q", "").strip()
    try:
        page = queries.search(queries.Filters(q=q or None), cursor=request.args.get("cursor"))
    except CustomerInvalid as exc:  # a cursor this screen did not hand out
        raise ValidationFailed(exc.errors, "This page address is not valid.") from None
    context = {
        "q": q,
        "customers": [queries.visible(customer) for customer in page.items],
        "next_page": url_for("customers.index", q=q or None, cursor=page.next_cursor)
        if page.next_cursor
        else None,
        "results_id": RESULTS_ID,
    }
    template = "customers/_results.html" if _wants_results_only() else "customers/index.html"
    return render_template(template, **context)


def _timeline(customer_id: int) -> list[audit.AuditEntry]:
    """The newest audit entries about this customer (ix_audit_log_entity_id)."""
    return list(
        db.session.scalars(
            select(audit.AuditEntry)
            .where(
                audit.AuditEntry.entity == "customers",
                audit.AuditEntry.entity_id == str(customer_id),
            )
            .order_by(audit.AuditEntry.id.desc())
            .limit(TIMELINE_SIZE)
        )
    )


def _checks_context(
    customer_id: int, values: dict[str, str] | None = None, errors: dict | None = None
) -> dict[str, Any]:
    """What the checks section shows: the customer's checks and the manual-check form."""
    checks = verification.latest(customer_id)
    return {
        "checks": checks,
        "check_labels": audit.actor_labels({f"user:{c.checked_by}" for c in checks}),
        "check_values": values or {"kind": verification.IDENTITY, "outcome": "passed"},
        "check_errors": errors or {},
        "check_kinds": verification.KINDS,
        "check_outcomes": verification.OUTCOMES,
    }


def _page(customer_id: int, status: int = 200, **checks: Any) -> tuple[str, int]:
    customer = queries.get(customer_id)
    entries = _timeline(customer.id)
    html = render_template(
        "customers/show.html",
        customer=queries.visible(customer),
        entries=entries,
        labels=audit.actor_labels({entry.actor for entry in entries}),
        tabs=TABS,
        **_checks_context(customer.id, **checks),
    )
    return html, status


@bp.get("/<int:customer_id>")
@requires("customers:read")
def show(customer_id: int) -> ResponseReturnValue:
    return _page(customer_id)


CHECK_FIELDS = ("kind", "outcome", "reference", "notes")


@bp.post("/<int:customer_id>/verifications")
@requires("customers:update")
def verify(customer_id: int) -> ResponseReturnValue:
    """Record a manual check. htmx swaps the checks section (422 with the form's errors);
    without htmx, back to the customer's page."""
    values = {name: request.form.get(name, "") for name in CHECK_FIELDS}
    upload = request.files.get("evidence")
    evidence = (upload.filename, upload.stream) if upload and upload.filename else None
    try:
        verification.record_manual(
            customer_id,
            values["kind"],
            values["outcome"],
            values["reference"] or None,
            evidence,
            notes=values["notes"] or None,
        )
    except CustomerInvalid as exc:
        if not wants_fragment():
            return _page(customer_id, 422, values=values, errors=exc.errors)
        context = _checks_context(customer_id, values, exc.errors)
        return render_template("customers/_checks.html", customer_id=customer_id, **context), 422
    if not wants_fragment():
        flash("Check recorded.", "success")
        return redirect(url_for("customers.show", customer_id=customer_id, _anchor="checks"), 303)
    context = _checks_context(customer_id)
    return render_template(
        "customers/_checks.html", customer_id=customer_id, recorded=True, **context
    )


@bp.get("/<int:customer_id>/verifications/<int:verification_id>/evidence")
@requires(verification.EVIDENCE_PERMISSION)
def evidence(customer_id: int, verification_id: int) -> ResponseReturnValue:
    """The evidence file of a check, as a download (never shown inline: it is whatever
    was uploaded)."""
    path, name, content_type = verification.evidence_file(customer_id, verification_id)
    response = send_file(path, mimetype=content_type, as_attachment=True, download_name=name)
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _payload(form: MultiDict[str, str]) -> dict[str, Any]:
    """The form as core.customers.rules.clean takes it: blank fields are left out."""
    kind = form.get("kind", "")
    names = KIND_FIELDS.get(kind, KIND_FIELDS[PERSON] + KIND_FIELDS[COMPANY]) + COMMON_FIELDS
    payload: dict[str, Any] = {"kind": kind} if kind else {}
    payload |= {name: form[name].strip() for name in names if form.get(name, "").strip()}
    agent_id = form.get("agent_id", "").strip()
    if agent_id:
        # Not a number: passed on as typed, so the rule's own message names the field.
        payload["agent_id"] = int(agent_id) if agent_id.isdigit() else agent_id
    return payload


def _form(
    values: dict[str, Any],
    errors: dict[str, list[str]],
    status: int = 200,
    duplicates: list[queries.Duplicate] | None = None,
) -> tuple[str, int]:
    return (
        render_template(
            "customers/new.html",
            values=values,
            errors=errors,
            duplicates=duplicates or [],
            channels=CHANNELS,
            assigns_agents=agent_queries.manages_customers(),
        ),
        status,
    )


@bp.get("/new")
@requires("customers:create")
def new() -> ResponseReturnValue:
    return _form({"kind": PERSON}, {})


@bp.post("/new")
@requires("customers:create")
def create() -> ResponseReturnValue:
    values = request.form.to_dict()
    try:
        customer = operations.create(_payload(request.form), force=request.form.get("force") == "1")
    except CustomerInvalid as exc:
        return _form(values, exc.errors, 422)
    except operations.DuplicatesFound as found:
        # Nothing written: the same form, the look-alikes, and a way to save anyway.
        return _form(values, {}, 409, found.duplicates)
    flash(f"{customer.display_name} added.", "success")
    return redirect(url_for("customers.show", customer_id=customer.id), 303)


def init_app(app: Flask) -> None:
    hosts.tenant_only(app, bp.name)
    app.register_blueprint(bp)
    menu.add_item(
        app, MenuItem("Customers", "customers.index", permission="customers:read", order=20)
    )
