"""`/`: the marketing page on the apex, the dashboard on a tenant's host.

One URL, two hosts: Flask routes by path only, so this one view picks by `g.tenant`.
"""

from __future__ import annotations

from flask import Blueprint, Flask, g, render_template
from flask.typing import ResponseReturnValue
from flask_security import current_user, login_required

bp = Blueprint("site", __name__)


@bp.get("/")
def index() -> ResponseReturnValue:
    if g.tenant is None:
        return render_template("site/landing.html")
    return dashboard()


@login_required
def dashboard() -> ResponseReturnValue:
    return render_template("site/dashboard.html", user=current_user)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
