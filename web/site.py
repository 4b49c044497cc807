"""`/`: the marketing page on the apex, the dashboard on a tenant's host.

One URL, two hosts: Flask routes by path only, so this one view picks by `g.tenant`.
The view is public for the landing page; the dashboard asks for a signed-in user.
"""

from __future__ import annotations

from flask import Blueprint, Flask, g, render_template
from flask.typing import ResponseReturnValue
from flask_security import current_user

from core.security.authz import login_only, public

bp = Blueprint("site", __name__)


@bp.get("/")
@public
def index() -> ResponseReturnValue:
    if g.tenant is None:
        return render_template("site/landing.html")
    return dashboard()


@login_only
def dashboard() -> ResponseReturnValue:
    return render_template("site/dashboard.html", user=current_user)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
