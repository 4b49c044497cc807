"""A test-only component (loaded through the COMPONENTS setting): views that exercise
authorization paths no production view takes yet."""

from __future__ import annotations

from flask import Blueprint, Flask
from flask_login import current_user

from core.db import db
from core.security import scope
from core.security.authz import authorize, login_only, requires
from core.security.models import Role, User
from web import hosts

bp = Blueprint("probe", __name__, url_prefix="/probe")
# Under /api/ but outside the API blueprint (so a session cookie signs in): the same
# decorator answers in problem+json there.
api_bp = Blueprint("probe_api", __name__, url_prefix="/api/probe")


@bp.post("/write-then-authorize")
@login_only
def write_then_authorize() -> str:
    """Writes first, then finds the caller lacks a permission: the write must go,
    the audited denial must stay."""
    db.session.add(Role(name="written-before-denial", permissions=[]))
    db.session.flush()
    authorize("settings:update")
    db.session.commit()
    return "written"


@bp.get("/users/<int:user_id>")
@login_only
def own_user(user_id: int) -> str:
    """A user may look at their own row only: any other id is 404, as if missing."""
    return scope.get_or_404(User, user_id, visible_if=User.id == current_user.id).email


@api_bp.get("/exports")
@requires("reports:export")
def exports() -> dict[str, list[str]]:
    return {"exports": []}


def init_app(app: Flask) -> None:
    for blueprint in (bp, api_bp):
        hosts.tenant_only(app, blueprint.name)
        app.register_blueprint(blueprint)
