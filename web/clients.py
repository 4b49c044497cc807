"""API clients: the admin screen where integrations get and lose their credentials.

Creating a client shows its secret once, on the response page itself (never in a
redirect, a flash or a URL), with caching forbidden. Revoking takes effect on the
client's next request, since every API request re-checks the client.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user

from core.hookspecs import MenuItem
from core.security import tokens
from core.security.authz import requires
from core.security.permissions import CRUD, MODULES, SPECIAL
from web import hosts, menu

bp = Blueprint("clients", __name__, url_prefix="/settings/api-clients")

# The scopes a client may be given, laid out as the form's grid: one row per module.
SCOPE_ROWS = (
    *((module, tuple(f"{module}:{op}" for op in CRUD)) for module in MODULES),
    ("special", tuple(sorted(SPECIAL))),
)


def _index(values: dict, errors: dict, status: int = 200) -> tuple[str, int]:
    html = render_template(
        "clients/index.html",
        clients=tokens.list_clients(),
        scope_rows=SCOPE_ROWS,
        ops=CRUD,
        values=values,
        errors=errors,
    )
    return html, status


@bp.get("")
@requires("settings:read")
def index() -> ResponseReturnValue:
    return _index({"name": "", "scopes": []}, {})


@bp.post("")
@requires("settings:update")
def create() -> ResponseReturnValue:
    name = request.form.get("name", "")
    scopes = request.form.getlist("scopes")
    try:
        client, secret = tokens.create_client(name, scopes, current_user)
    except tokens.ClientInvalid as exc:
        return _index({"name": name, "scopes": scopes}, exc.errors, 422)
    response = Response(render_template("clients/created.html", client=client, secret=secret))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/<int:client_pk>/revoke")
@requires("settings:update")
def revoke(client_pk: int) -> ResponseReturnValue:
    client = tokens.get_client(client_pk)
    if client is None:
        abort(404, description="No API client has this address.")
    tokens.revoke_client(client)
    flash(f"{client.name} is revoked; its tokens no longer work.", "success")
    return redirect(url_for("clients.index"), 303)


def init_app(app: Flask) -> None:
    hosts.tenant_only(app, bp.name)
    app.register_blueprint(bp)
    menu.add_item(
        app,
        MenuItem(
            "API clients", "clients.index", section="settings", permission="settings:read", order=40
        ),
    )
