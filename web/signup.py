"""Apex signup: the form, then a page whose progress bar polls the provisioning job.

Only on the apex; on a tenant's host these pages do not exist (404).
"""

from __future__ import annotations

import uuid

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)

from core.security.authz import public
from tenants import signup as signups
from tenants.models import Signup
from web import hosts, progress
from web.rendering import wants_fragment
from web.urls import tenant_url

bp = Blueprint("signup", __name__, url_prefix="/signup")

FIELDS = ("name", "slug", "admin_email")


@bp.get("")
@public
def form() -> str:
    return render_template("signup/form.html", values={}, errors={})


@bp.post("")
@public
def submit() -> Response | tuple[str, int]:
    values = {name: request.form.get(name, "").strip() for name in FIELDS}
    password = request.form.get("password", "")
    if password != request.form.get("password_confirm", ""):
        # Nothing is recorded, but the visitor hears about every other problem too.
        errors = {"password_confirm": ["The two passwords differ."]}
        errors |= signups.check_signup(
            values["name"], signups.normalize_slug(values["slug"]), values["admin_email"], password
        )
    else:
        try:
            created = signups.start_signup(
                values["name"], values["slug"], values["admin_email"], password
            )
        except signups.SignupInvalid as exc:
            errors = exc.errors
        else:
            return redirect(url_for("signup.show", signup_id=created.id), 303)
    return render_template("signup/form.html", values=values, errors=errors), 422


def _signup_or_404(signup_id: uuid.UUID) -> Signup:
    found = signups.get_signup(signup_id)
    if found is None:
        abort(404, description="No signup has this address.")
    return found


def _state(found: Signup) -> progress.ProgressState:
    return progress.from_signup(found, url_for("signup.status", signup_id=found.id))


@bp.get("/<uuid:signup_id>")
@public
def show(signup_id: uuid.UUID) -> str:
    found = _signup_or_404(signup_id)
    return render_template(
        "signup/progress.html",
        signup=found,
        state=_state(found),
        workspace_url=tenant_url(found.slug),
        login_url=tenant_url(found.slug, "/login"),
    )


@bp.get("/<uuid:signup_id>/status")
@public
def status(signup_id: uuid.UUID) -> Response:
    found = _signup_or_404(signup_id)
    target = tenant_url(found.slug, "/login")
    response = current_app.make_response(
        render_template("signup/status.html", state=_state(found), login_url=target)
    )
    if found.status == "done" and wants_fragment():
        # htmx follows this with a full page load of the tenant's host.
        response.headers["HX-Redirect"] = target
    return response


def init_app(app: Flask) -> None:
    hosts.apex_only(app, bp.name)
    app.register_blueprint(bp)
